"""The checkpoint file: what it holds, and how it is written and read safely.

A checkpoint is a dict of tensors and plain data only, so it loads with
``torch.load(weights_only=True)`` and a file carrying a pickle payload is
refused instead of executed.  Keys:

- ``format``: ``"tao-automl/rtdetr"`` and ``format_version``: 1
- ``model``: the state dict to run (the EMA weights when EMA is on)
- ``model_config``: the ``model.*`` settings the weights need (a plain dict)
- ``num_classes``: int; ``category_ids``: the dataset's category id of each
  contiguous label (list of int, may be empty); ``class_names``: list of str
- training state, when written by the trainer: ``epoch``, ``global_step``,
  ``optimizer``, ``lr_scheduler``, ``ema``, ``rng``, ``best_metric``...

Writes go to a temporary file in the same folder and are renamed into place,
so a crash or a full disk never leaves a half-written checkpoint.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Dict

import torch

from trainers.atomic_write import same_file_atomic, write_atomic
from trainers.errors import UserError

FORMAT = "tao-automl/rtdetr"
FORMAT_VERSION = 1


def save_checkpoint(payload: Dict[str, Any], path: os.PathLike | str, *more: os.PathLike | str) -> Path:
    """Atomically write ``payload`` (tensors and plain data) to ``path``, then give each of ``more`` the
    same file, in order (serialized once: see :func:`trainers.atomic_write.same_file_atomic`)."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    written = write_atomic(path, lambda handle: torch.save(payload, handle))
    for other in more:
        same_file_atomic(written, other)
    return written


def load_checkpoint(path: os.PathLike | str, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; anything unsafe or unreadable is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unsafe content"
        raise UserError(f"{path}: refused to load: the file holds objects other than tensors and plain data "
                        f"({first_line})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        # EOFError of a zero-byte file has no message: the exception's name says it.
        detail = (str(error).strip().splitlines() or [type(error).__name__ + " (empty or cut-off file)"])[0]
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None
    if not isinstance(payload, dict):
        raise UserError(f"{path}: not a checkpoint (expected a dict, found {type(payload).__name__})")
    return payload


def model_state_from(payload: Dict[str, Any], path: os.PathLike | str = "checkpoint") -> Dict[str, torch.Tensor]:
    """The weights to run: ours (``model``), or the official layouts (``ema.module`` first, then ``model``)."""
    if payload.get("format") == FORMAT:
        return payload["model"]
    if isinstance(payload.get("ema"), dict) and isinstance(payload["ema"].get("module"), dict):
        return payload["ema"]["module"]
    if isinstance(payload.get("model"), dict):
        return payload["model"]
    if isinstance(payload.get("state_dict"), dict):
        return payload["state_dict"]
    if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return payload
    raise UserError(f"{path}: no model weights found (looked for 'ema.module', 'model', 'state_dict')")
