"""The PyTorch runtime: a checkpoint's fused model with the deploy post-processor, as the ONNX graph has it."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from trainers.rtdetr.checkpoint import load_checkpoint
from trainers.rtdetr.load import model_from_checkpoint
from trainers.rtdetr.model import RTDETR, PostProcessor

from .predictor import ModelInfo, Predictor


class DeployModel(nn.Module):
    """``images [B,3,H,W] -> (labels [B,K] int64, boxes [B,K,4], scores [B,K])``: the exported graph.

    Boxes are x0, y0, x1, y1 in input pixels: with ``input_size`` (H, W) fixed
    the scale is a constant of the graph (what ONNX export needs); without it,
    it is read from the batch (eager runs at any size).
    """

    def __init__(self, model: RTDETR, num_select: int, input_size: Optional[Tuple[int, int]] = None):
        super().__init__()
        self.model = model
        self.postprocessor = PostProcessor(num_select=num_select, deploy=True)
        self.input_size = input_size
        if input_size is not None:
            height, width = input_size
            self.register_buffer("input_wh", torch.tensor([[float(width), float(height)]]), persistent=False)

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        if self.input_size is not None:
            size = self.input_wh
        else:
            size = torch.tensor([[float(images.shape[-1]), float(images.shape[-2])]], device=images.device)
        return self.postprocessor(self.model(images), size)


def checkpoint_info(payload: Dict[str, Any], model: RTDETR) -> ModelInfo:
    """Classes and top-k of a checkpoint: its stored categories (else labels 0..C-1) and model.num_select."""
    stored = payload.get("model_config") if isinstance(payload.get("model_config"), dict) else {}
    num_select = int(stored.get("num_select") or min(300, model.arch.decoder.num_queries * model.num_classes))
    ids = [int(c) for c in payload.get("category_ids") or []]
    names = [str(n) for n in payload.get("class_names") or []]
    if not ids:
        ids = list(range(model.num_classes))
    if len(names) != len(ids):
        names = [str(c) for c in ids]
    return ModelInfo(category_ids=ids, class_names=names, num_select=num_select)


class PyTorchPredictor(Predictor):
    """A ``.pth`` checkpoint that stores its architecture, fused for deploy, eval, channels-last.

    ``input_size`` is None: any H, W that are multiples of 32 are accepted.
    """

    runtime = "pytorch"

    def __init__(self, path: str, device: str | torch.device = "cpu", num_threads: Optional[int] = None):
        payload = load_checkpoint(path, map_location="cpu")
        model = model_from_checkpoint(payload, path)
        super().__init__(path, checkpoint_info(payload, model))
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.device = torch.device(device)
        self.model = DeployModel(model.fuse_for_deploy(), self.info.num_select).to(
            device=self.device, memory_format=torch.channels_last).eval()

    @torch.inference_mode()
    def predict(self, images: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        batch = torch.as_tensor(np.asarray(images, dtype=np.float32), device=self.device)
        labels, boxes, scores = self.model(batch.contiguous(memory_format=torch.channels_last))
        return labels.cpu().numpy(), boxes.float().cpu().numpy(), scores.float().cpu().numpy()
