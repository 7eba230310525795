"""Ray's experiment state torn by a killed driver, mended before ``--resume``.

Ray Tune saves its state (experiment_state-*.json, the searcher's and the callbacks' *.pkl) atomically
in a local staging folder, then copies that folder to the storage path with pyarrow, which writes each
file in place.  A driver killed during that copy leaves a torn file in the storage path, and
``Tuner.restore`` then fails on it ("EOFError: Ran out of input") although nothing else is lost.

Before a resume each state file is parsed without running it (``json.loads``; ``pickletools.genops``
walks a pickle's opcodes and never imports or calls anything).  The torn file's driver session gets
its state back from its staging copy, which survives the kill under Ray's temporary folder on the
driver's machine; without one, that session's files are set aside as ``NAME.torn`` and Ray restores
from the state the session before saved.  Only a state with nothing to fall back on stops the resume,
with one line naming the file.
"""
from __future__ import annotations

import json
import os
import pickletools
import re
import sys
from pathlib import Path
from typing import Callable, List, Optional

from trainers.atomic_write import write_atomic
from trainers.errors import UserError

TORN_SUFFIX = ".torn"
TUNER_FILE = "tuner.pkl"   # written once, straight to the storage path, when the sweep starts
_SESSION_STAMP = re.compile(r"-(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})\.(?:json|pkl)$")


def mend_torn_state(experiment: Path, log: Callable[[str], None] = print,
                    ray_temp_root: Optional[Path] = None) -> List[Path]:
    """Mend the torn state files at the top of ``experiment`` (Ray's experiment folder); returns them.

    A driver session's files are mended together, so that Ray restores one session's state, not a mix:
    all from the staging copy, or all set aside.  Raises UserError when the tuner's own file, or every
    session's state, is torn beyond mending.
    """
    root = Path(ray_temp_root) if ray_temp_root is not None else default_ray_temp_root()
    state = [path for path in sorted(experiment.iterdir()) if _is_state_file(path)]
    torn = [path for path in state if not is_whole(path)]
    for path in torn:
        if path.name == TUNER_FILE:
            raise UserError(f"{path}: torn by the killed driver while the sweep started, and no copy of it "
                            f"remains: nothing to resume; move {experiment.parent} aside and start the sweep "
                            f"again (trials.csv and the trial folders beside it are kept)")
    for session in sorted({session_of(path) for path in torn}):
        # A file without a session in its name stands alone: only the torn one itself goes aside.
        files = [path for path in (state if session else torn) if session_of(path) == session]
        names = ", ".join(path.name for path in torn if session_of(path) == session)
        staging = staging_folder(experiment.name, session, [path.name for path in files], root)
        for path in files:
            if staging is not None:
                data = (staging / path.name).read_bytes()
                write_atomic(path, lambda handle: handle.write(data))
            else:
                os.replace(path, path.with_name(path.name + TORN_SUFFIX))
        if staging is not None:
            log(f"{experiment}: the killed driver tore {names}; its session's state was restored from Ray's "
                f"staging copy in {staging}")
        else:
            log(f"{experiment}: the killed driver tore {names} and no staging copy remains; its session's "
                f"state is set aside as *{TORN_SUFFIX} and the sweep resumes from the session before")
    if torn and not any(experiment.glob("experiment_state-*.json")):
        aside = sorted(experiment.glob(f"experiment_state-*.json{TORN_SUFFIX}"))
        raise UserError(f"{experiment}: the killed driver tore its only experiment state "
                        f"({aside[-1].name if aside else 'experiment_state-*.json'}): nothing to resume; move "
                        f"{experiment.parent} aside and start the sweep again")
    return torn


def is_whole(path: Path) -> bool:
    """True when the JSON or pickle file at ``path`` parses to its end (a pickle is only walked, not run).
    The content decides, not the name: Ray's search_gen_state-*.json is a pickle."""
    try:
        data = path.read_bytes()
        if data.startswith(b"\x80"):   # pickle protocol 2 and later
            for _ in pickletools.genops(data):
                pass
        else:
            json.loads(data)
        return True
    except (OSError, ValueError, UnicodeDecodeError):
        return False


def session_of(path: Path) -> str:
    """The driver session a state file belongs to: the start time in its name (``tuner.pkl`` has none)."""
    found = _SESSION_STAMP.search(path.name)
    return found.group(1) if found else ""


def staging_folder(experiment_name: str, session: str, names: List[str], root: Path) -> Optional[Path]:
    """The Ray staging folder of ``session`` holding whole copies of all ``names``, or None.

    Staging folders are ``ROOT/session_*/artifacts/SESSION/EXPERIMENT/driver_artifacts``, named by the
    same start time as the files: it tells two sweeps' folders apart.
    """
    pattern = f"session_*/artifacts/{session}/{experiment_name}/driver_artifacts"
    folders = sorted(root.glob(pattern), key=_modified, reverse=True) if root.is_dir() and session else []
    return next((folder for folder in folders if all(is_whole(folder / name) for name in names)), None)


def default_ray_temp_root() -> Path:
    """Where a local Ray keeps its sessions: Ray's own rule (ray._common.utils.get_default_ray_temp_dir),
    repeated here because that module is private."""
    if "RAY_TMPDIR" in os.environ:
        base = os.environ["RAY_TMPDIR"]
    elif sys.platform.startswith("linux") and "TMPDIR" in os.environ:
        base = os.environ["TMPDIR"]
    else:
        base = "/tmp"
    return Path(base) / "ray"


def _is_state_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix in (".json", ".pkl")


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
