"""Device and numeric precision (``train.precision``: fp32 / bf16 / fp16).

- The device is CUDA when a GPU exists and ``num_gpus > 0``, else the CPU.
- ``bf16`` runs the forward pass under autocast on CUDA (when the GPU
  supports it) or on the CPU; ``fp16`` only on CUDA, with a GradScaler.
- The loss is computed in fp32: the model's outputs are cast to float32
  before the criterion and the Hungarian matcher, since fp16 logits there are
  a known cause of NaN losses (lyuwenyu/RT-DETR #634, #464).
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

from trainers.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def select_device(num_gpus: int, local_rank: int = 0) -> torch.device:
    """``cuda:<local_rank>`` when CUDA is available and ``num_gpus > 0``, else ``cpu``."""
    if num_gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def check_precision(precision: str, device: torch.device) -> str:
    """The normalised precision name, or a UserError when the device cannot run it."""
    name = str(precision).lower()
    if name not in PRECISIONS:
        raise UserError(f"train.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        raise UserError("train.precision: fp16 needs a CUDA GPU; use bf16 or fp32 on the CPU")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("train.precision: this GPU does not support bf16; use fp16 or fp32")
    return name


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context for the forward pass (a no-op for fp32)."""
    name = check_precision(precision, device)
    if name == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[name])


def make_grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 (bf16 has fp32's exponent range and needs none)."""
    name = check_precision(precision, device)
    return torch.amp.GradScaler(device.type, enabled=(name == "fp16"))


def to_float32(value: Any) -> Any:
    """``value`` with every floating tensor cast to float32, through dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {key: to_float32(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(item) for item in value)
    return value
