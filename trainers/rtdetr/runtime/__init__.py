"""Run a model file with the runtime its suffix names: ``load_predictor(path) -> Predictor``.

- ``.pth`` / ``.pt`` / ``.ckpt``: PyTorch (:mod:`.pytorch`), the checkpoint's model fused for deploy;
- ``.onnx``: ONNX Runtime (:mod:`.onnxruntime`), CPU, or CUDA when asked for and available;
- ``.engine``: TensorRT (``trainers.rtdetr.tensorrt.runtime``), imported only when needed.

Every predictor has the same ``predict(images) -> (labels, boxes, scores)``
contract (see :mod:`.predictor`).
"""
from __future__ import annotations

import os
from pathlib import Path

from trainers.errors import UserError

from .predictor import ModelInfo, Predictor, predict_any_batch, scale_boxes

PYTORCH_SUFFIXES = (".pth", ".pt", ".ckpt")
ONNX_SUFFIXES = (".onnx",)
TENSORRT_SUFFIXES = (".engine",)
EXPORTED_SUFFIXES = ONNX_SUFFIXES + TENSORRT_SUFFIXES

__all__ = ["EXPORTED_SUFFIXES", "ModelInfo", "Predictor", "is_exported", "load_predictor", "predict_any_batch",
           "scale_boxes"]


def is_exported(path: os.PathLike | str) -> bool:
    """True for the files a runtime other than PyTorch runs (.onnx, .engine)."""
    return Path(path).suffix.lower() in EXPORTED_SUFFIXES


def load_predictor(path: os.PathLike | str, device: str = "cpu", **kwargs) -> Predictor:
    """The predictor for ``path`` by its suffix; ``kwargs`` go to the runtime (e.g. ``num_threads``)."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    if suffix in PYTORCH_SUFFIXES:
        from .pytorch import PyTorchPredictor

        return PyTorchPredictor(path, device, **kwargs)
    if suffix in ONNX_SUFFIXES:
        from .onnxruntime import OnnxRuntimePredictor

        return OnnxRuntimePredictor(path, device, **kwargs)
    if suffix in TENSORRT_SUFFIXES:
        try:
            from trainers.rtdetr.tensorrt.runtime import TensorRTPredictor
        except ImportError as error:
            raise UserError(f"{path}: cannot run a TensorRT engine here ({error})") from None
        return TensorRTPredictor(path, device, **kwargs)
    raise UserError(f"{path}: unknown model file type {suffix or '(no suffix)'!r}; expected a PyTorch checkpoint "
                    f"({', '.join(PYTORCH_SUFFIXES)}), an ONNX file (.onnx) or a TensorRT engine (.engine)")
