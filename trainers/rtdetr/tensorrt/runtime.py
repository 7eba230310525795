"""Run a TensorRT ``.engine`` as a :class:`~trainers.rtdetr.runtime.predictor.Predictor`.

Buffers are torch CUDA tensors (no pycuda); inference is ``execute_async_v3``
on a torch CUDA stream.  Classes, input size and K come from the sidecar
``<engine>.json`` that :mod:`.builder` writes.  Batches larger than the
engine's profile are run in chunks; a fixed-batch engine gets a padded last
chunk.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from trainers.errors import UserError

from ..runtime.predictor import ModelInfo, Predictor
from .availability import require_tensorrt

OUTPUTS = ("labels", "boxes", "scores")


def read_sidecar(engine_path: Path) -> dict:
    sidecar = Path(str(engine_path) + ".json")
    if not sidecar.is_file():
        raise UserError(f"{engine_path}: no {sidecar.name} beside it (classes, input size); build engines with "
                        f"tao-automl gen_trt_engine, which writes both")
    try:
        return json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"{sidecar}: not readable JSON ({error})") from None


def model_info_from_sidecar(data: dict) -> ModelInfo:
    batch = data.get("batch") or {}
    fixed = batch.get("min") if batch and batch.get("min") == batch.get("max") else None
    size = data.get("input_size")
    return ModelInfo(category_ids=[int(c) for c in data.get("category_ids") or []],
                     class_names=[str(n) for n in data.get("class_names") or []],
                     num_select=int(data.get("num_select") or 0),
                     input_size=(int(size[0]), int(size[1])) if size else None,
                     fixed_batch=int(fixed) if fixed else None,
                     extra={"precision": data.get("precision"), "max_batch": batch.get("max")})


class TensorRTPredictor(Predictor):
    runtime = "tensorrt"

    def __init__(self, path, device: str = "cuda"):
        trt = require_tensorrt("tensorrt runtime")
        import torch

        super().__init__(path, model_info_from_sidecar(read_sidecar(Path(path))))
        self.trt, self.torch = trt, torch
        # An engine runs only on a GPU: a generic "cpu" default from the caller means the current GPU.
        self.device = torch.device(device) if str(device).startswith("cuda") else torch.device("cuda")
        torch.cuda.set_device(self.device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.trt_runtime = trt.Runtime(self.logger)
        self.engine = self.trt_runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise UserError(f"{path}: TensorRT cannot load this engine (built with another TensorRT version "
                            f"or for another GPU?); rebuild it with tao-automl gen_trt_engine on this machine")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1 or not set(OUTPUTS) <= set(names):
            raise UserError(f"{path}: expected input images and outputs {', '.join(OUTPUTS)}; the engine has "
                            f"{', '.join(names)}")
        self.input_name = inputs[0]
        profile = self.engine.get_tensor_profile_shape(self.input_name, 0)  # (min, opt, max)
        self.min_batch, self.max_batch = int(profile[0][0]), int(profile[2][0])

    def _torch_dtype(self, name: str):
        mapping = {self.trt.float32: self.torch.float32, self.trt.float16: self.torch.float16,
                   self.trt.int32: self.torch.int32, self.trt.int64: self.torch.int64,
                   self.trt.bool: self.torch.bool}
        return mapping[self.engine.get_tensor_dtype(name)]

    def _run(self, images: np.ndarray) -> Dict[str, np.ndarray]:
        torch = self.torch
        # Everything on self.stream: the input copy (synchronous) is done before TensorRT starts.
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device, self._torch_dtype(self.input_name),
                                                                      non_blocking=False)
            self.context.set_input_shape(self.input_name, tuple(batch.shape))
            self.context.set_tensor_address(self.input_name, int(batch.data_ptr()))
            outputs = {}
            for name in OUTPUTS:
                shape = tuple(self.context.get_tensor_shape(name))
                outputs[name] = torch.empty(shape, dtype=self._torch_dtype(name), device=self.device)
                self.context.set_tensor_address(name, int(outputs[name].data_ptr()))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.path}: TensorRT execution failed")
            self.stream.synchronize()
            return {name: tensor.cpu().numpy() for name, tensor in outputs.items()}

    def predict(self, images: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``images`` float32 [B,3,H,W] -> (labels [B,K] int64, boxes [B,K,4] float32, scores [B,K] float32)."""
        images = np.asarray(images, dtype=np.float32)
        count = images.shape[0]
        if count == 0:
            k = self.info.num_select
            return np.zeros((0, k), np.int64), np.zeros((0, k, 4), np.float32), np.zeros((0, k), np.float32)
        parts: List[Dict[str, np.ndarray]] = []
        for start in range(0, count, self.max_batch):
            chunk = images[start:start + self.max_batch]
            real = chunk.shape[0]
            if real < self.min_batch:  # fixed-batch engine: pad with zeros, drop the padding's outputs
                chunk = np.concatenate([chunk, np.zeros((self.min_batch - real,) + chunk.shape[1:], np.float32)])
            parts.append({k: v[:real] for k, v in self._run(chunk).items()})
        labels, boxes, scores = (np.concatenate([p[name] for p in parts]) for name in OUTPUTS)
        return labels.astype(np.int64), boxes.astype(np.float32), scores.astype(np.float32)

    def close(self) -> None:
        for attribute in ("context", "engine", "trt_runtime"):
            if hasattr(self, attribute):
                setattr(self, attribute, None)
