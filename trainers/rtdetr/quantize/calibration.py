"""Calibration images for ONNX Runtime static quantization, preprocessed exactly as evaluation does."""
from __future__ import annotations

import copy
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from trainers.errors import UserError

KEY = "dataset.quant_calibration_data_sources"


class CalibrationReader(CalibrationDataReader):
    """Feeds ``{input_name: float32 [1,3,H,W]}`` one image at a time, at most ``max_images``.

    Images come from ``dataset.quant_calibration_data_sources`` (a folder, or a
    COCO json with its image folder) through the evaluation transforms (resize
    to ``input_size``, pixels / 255), so the ranges seen match inference.
    """

    def __init__(self, cfg, input_size: Tuple[int, int], input_name: str = "images", max_images: int = 64):
        from trainers.rtdetr.data import build_dataloader

        sources = cfg.dataset.quant_calibration_data_sources
        if not sources.image_dir:
            raise UserError(f"{KEY}.image_dir: not set; give a folder of representative images (a few dozen "
                            f"training or validation images)")
        cfg = copy.deepcopy(cfg)
        cfg.dataset.augmentation.eval_spatial_size = [int(v) for v in input_size]
        cfg.dataset.batch_size = 1
        self.loader = build_dataloader(cfg, "quant_calibration", log=None)
        if len(self.loader.dataset) == 0:
            raise UserError(f"{KEY}.image_dir: {sources.image_dir}: no images found")
        self.input_name, self.max_images = input_name, int(max_images)
        self._iterator: Optional[Iterator] = None
        self.count = 0

    def __len__(self) -> int:
        return min(len(self.loader.dataset), self.max_images)

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        if self._iterator is None:
            self._iterator = iter(self.loader)
        if self.count >= self.max_images:
            return None
        batch = next(self._iterator, None)
        if batch is None:
            return None
        self.count += 1
        return {self.input_name: np.ascontiguousarray(batch[0].numpy(), dtype=np.float32)}

    def rewind(self) -> None:
        self._iterator, self.count = None, 0
