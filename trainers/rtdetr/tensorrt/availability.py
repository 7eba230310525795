"""Is TensorRT usable here?  Both a CUDA GPU and the ``tensorrt`` package are needed.

Checked before any TensorRT call so that a machine without them gets one line
naming what is missing (the command exits 2), never an ImportError traceback.
"""
from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import List, Optional

from trainers.errors import UserError

NO_GPU = "no CUDA GPU found (TensorRT needs one)"
NO_PACKAGE = ("the tensorrt Python package is not installed "
              "(pip install tensorrt-cu12, or tensorrt-cu11 for CUDA 11, matching your driver)")


def has_cuda_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.device_count() > 0)


def has_tensorrt_package() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def missing_requirements(has_gpu: Optional[bool] = None, has_package: Optional[bool] = None) -> List[str]:
    """What is missing for TensorRT, as message fragments (empty when everything is there).

    The arguments default to probing this machine; tests pass them to check each message.
    """
    has_gpu = has_cuda_gpu() if has_gpu is None else has_gpu
    has_package = has_tensorrt_package() if has_package is None else has_package
    return ([] if has_gpu else [NO_GPU]) + ([] if has_package else [NO_PACKAGE])


def missing_message(what: str, missing: List[str]) -> str:
    return f"{what}: " + "; and ".join(missing)


def require_tensorrt(what: str = "gen_trt_engine", gpu_id: Optional[int] = None) -> ModuleType:
    """The imported ``tensorrt`` module, or UserError naming the GPU and/or the package that is missing."""
    missing = missing_requirements()
    if missing:
        raise UserError(missing_message(what, missing))
    import torch

    if gpu_id is not None and gpu_id >= torch.cuda.device_count():
        raise UserError(f"{what}.gpu_id: {gpu_id} but this machine has {torch.cuda.device_count()} CUDA GPU(s); "
                        f"use 0..{torch.cuda.device_count() - 1}")
    try:
        import tensorrt
    except (ImportError, OSError) as error:  # a wheel whose CUDA libraries do not load
        raise UserError(f"{what}: the tensorrt package does not load ({error}); "
                        f"install the tensorrt wheel built for your CUDA version") from None
    return tensorrt
