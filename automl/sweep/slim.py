"""A finished trial's kept checkpoint without its training state.

With automl_delete_intermediate_ckpt on, a finished trial keeps only
``train/model_best.pth``.  Its optimizer moments (twice the weights for AdamW),
learning-rate schedule and RNG states are only needed to continue training that
very run, which never happens to a finished trial (its final.json says so): the
evaluated weights (EMA when on), the raw training weights and the metadata that
``load_model``, export and inference read stay.  A sweep of many trials keeps a
third of the disk.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional

from trainers.errors import UserError

TRAINING_STATE = ("optimizer", "lr_scheduler", "grad_scaler", "rng")


def slim_checkpoint(path: Path) -> int:
    """Rewrite ``path`` (atomically) without its training state; returns the bytes saved (0: nothing to do)."""
    from trainers.rtdetr.checkpoint import load_checkpoint, save_checkpoint

    path = Path(path)
    before = path.stat().st_size
    payload = load_checkpoint(path)
    if not any(key in payload for key in TRAINING_STATE):
        return 0
    for key in TRAINING_STATE:
        payload.pop(key, None)
    payload["training_state"] = "removed: a finished sweep trial keeps weights and metadata only"
    save_checkpoint(payload, path)
    return before - path.stat().st_size


# The driver slims a finished trial's checkpoint beside Ray Tune's event loop, not in it: loading and
# rewriting a checkpoint takes ~0.3-1 s, which would otherwise add to every trial's turnaround.
_pool: Optional[ThreadPoolExecutor] = None
_pending: List[Future] = []


def slim_in_background(path: Path) -> None:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slim-checkpoint")
    _pending.append(_pool.submit(_slim_quietly, Path(path)))


def wait_for_slimming() -> None:
    """Block until every checkpoint handed to :func:`slim_in_background` is rewritten (before the winner's
    is copied and the disk use is counted)."""
    while _pending:
        _pending.pop(0).result()


def _slim_quietly(path: Path) -> int:
    try:
        return slim_checkpoint(path)
    except (OSError, UserError):   # gone or unreadable: a full checkpoint stays, which is only bigger
        return 0
