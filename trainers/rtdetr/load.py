"""Build a ready model from a checkpoint file, with nothing else needed."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import torch

from trainers.errors import UserError

from .checkpoint import load_checkpoint, model_state_from
from .model import RTDETR, Architecture


def model_from_checkpoint(payload: Dict[str, Any], path: os.PathLike | str = "checkpoint") -> RTDETR:
    """A model with the weights of an already-read checkpoint (train mode, as built)."""
    if "architecture" not in payload:
        raise UserError(f"{path}: not a tao-automl RT-DETR checkpoint (no 'architecture'); "
                        f"convert official or transformers weights with `tao-automl import-weights`")
    model = RTDETR(Architecture.from_dict(payload["architecture"]))
    state = model_state_from(payload, path)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise UserError(f"{path}: weights do not fit the stored architecture "
                        f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    return model


def load_model(checkpoint_path: os.PathLike | str, device: Optional[str | torch.device] = "cpu") -> RTDETR:
    """The model of a checkpoint, in eval mode on ``device``."""
    payload = load_checkpoint(checkpoint_path, map_location="cpu")
    return model_from_checkpoint(payload, checkpoint_path).to(device).eval()
