"""A new sweep's SQLite MLflow store, copied from an already-migrated empty one.

MLflow creates a SQLite store by running its ~60 Alembic migrations one by
one: 3-6 s on two cores, paid by every sweep before its first trial can be
recorded.  The result is the same empty database every time for one MLflow
version, so the first sweep on a machine keeps a copy of it in the user's
cache and later sweeps start from a file copy (milliseconds).  The template
is named by MLflow's version, and MLflow checks the schema version of every
store it opens, so an upgraded MLflow makes (and uses) a template of its own.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional


def template_path() -> Path:
    import mlflow

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tao-automl"
    return cache / f"mlflow-{mlflow.__version__}-empty.db"


def seed_new_store(db_path: Path, open_store: Callable[[str], object]) -> None:
    """Put a migrated empty store at ``db_path`` when none exists there.

    ``open_store(uri)`` opens (and, on a new file, migrates) a store; it is how
    the template is made the first time.  Any failure here is silent: the caller
    then opens ``db_path`` as usual and MLflow creates it.
    """
    if db_path.exists():
        return
    template = _template(open_store)
    if template is None:
        return
    partial = db_path.with_name(f".{db_path.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(template, partial)
        os.replace(partial, db_path)
    except OSError:
        partial.unlink(missing_ok=True)


def _template(open_store: Callable[[str], object]) -> Optional[Path]:
    try:
        template = template_path()
        if template.is_file():
            return template
        template.parent.mkdir(parents=True, exist_ok=True)
        # Made in a private folder and renamed into place, so two sweeps starting at once never see half a file.
        with tempfile.TemporaryDirectory(dir=template.parent) as scratch:
            fresh = Path(scratch) / "empty.db"
            open_store(f"sqlite:///{fresh}")
            os.replace(fresh, template)
        return template
    except Exception:  # noqa: BLE001 - a cache that cannot be written only costs the migration time
        return None
