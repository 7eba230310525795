"""A finished trial's folder, tidied once its trainer has exited.

The driver hears that a trial ended (Tune's callback) before the trial's
worker has necessarily stopped its trainer: a trainer told to stop gets a
SIGTERM and up to 10 s (then SIGKILL) from the worker, and may still write
``model_latest.pth`` or ``model_best.pth`` in that time.  So the driver records
the trial at once (final.json, trials.csv, MLflow) but tidies the folder in a
background thread after the trainer's process group is gone: stale
temporaries of a killed writer, intermediate checkpoints
(automl_delete_intermediate_ckpt) and the kept checkpoint's training state
(slim.py).  Tidying beside Ray Tune's event loop also keeps its ~0.3-1 s of
checkpoint rewriting out of every trial's turnaround.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional

from trainers.atomic_write import remove_stale_temporaries
from trainers.errors import UserError

from .child import wait_until_trainer_exited
from .slim import slim_checkpoint
from .trial import BEST_CHECKPOINT

_pool: Optional[ThreadPoolExecutor] = None
_pending: List[Future] = []


def tidy_in_background(folder: Path, delete_intermediate: bool) -> None:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidy-trial")
    _pending.append(_pool.submit(tidy_finished_trial, Path(folder), delete_intermediate))


def wait_for_tidying() -> None:
    """Block until every finished trial handed to :func:`tidy_in_background` is tidied (before the winner's
    checkpoint is copied and the disk use is counted); the tidying thread then ends (a live one would keep
    the process from its quick exit, automl.cli.exit_now)."""
    global _pool
    while _pending:
        _pending.pop(0).result()
    if _pool is not None:
        _pool.shutdown()
        _pool = None


def tidy_finished_trial(folder: Path, delete_intermediate: bool) -> None:
    wait_until_trainer_exited(folder)
    remove_stale_temporaries(folder)
    if delete_intermediate:
        best = delete_intermediate_checkpoints(folder)
        if best is not None:
            try:   # the trial is finished: its kept checkpoint needs no optimizer
                slim_checkpoint(best)
            except (OSError, UserError):   # gone or unreadable: a full checkpoint stays, which is only bigger
                pass


def delete_intermediate_checkpoints(folder: Path) -> Optional[Path]:
    """Keep the trial's best checkpoint; epoch files, model_latest.pth and PBT donor copies go.  Returns the
    kept checkpoint (None when the trial has none: nothing is deleted then)."""
    best = folder / BEST_CHECKPOINT
    if not best.is_file():
        return None
    for path in best.parent.glob("*.pth"):
        if path.name != best.name:
            path.unlink(missing_ok=True)
    for donor in (folder / "donor").glob("*.pth"):
        donor.unlink(missing_ok=True)
    return best
