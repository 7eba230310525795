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

from pathlib import Path


TRAINING_STATE = ("optimizer", "lr_scheduler", "grad_scaler", "rng")


def slim_checkpoint(path: Path) -> int:
    """Rewrite ``path`` (atomically) without its training state; returns the disk freed in bytes (0: nothing
    to do).  Another name hard-linked to the file (the trainer links an epoch's checkpoint names:
    trainers.atomic_write) keeps the full checkpoint, and its blocks: the slim copy then adds to the disk
    used, a negative number."""
    from trainers.rtdetr.checkpoint import load_checkpoint, save_checkpoint

    path = Path(path)
    before = path.stat()
    freed_by_replacing = before.st_size if before.st_nlink == 1 else 0
    payload = load_checkpoint(path)
    if not any(key in payload for key in TRAINING_STATE):
        return 0
    for key in TRAINING_STATE:
        payload.pop(key, None)
    payload["training_state"] = "removed: a finished sweep trial keeps weights and metadata only"
    save_checkpoint(payload, path)
    return freed_by_replacing - path.stat().st_size
