"""Batching, with the official multi-scale training resize.

RT-DETRv2's ``BatchImageCollateFunction``: after stacking the (already
resized, e.g. 640x640) images, the whole batch is resized to a random
**square** size from ``multi_scales`` with ``F.interpolate``'s default
**nearest** mode, until the stop epoch.  Boxes are normalised, so they are
unchanged; ``target["size"]`` is updated to the new (w, h).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .policy import StopEpochPolicy, batch_key


class BatchCollate:
    """``collate(list of (image [3,H,W], target)) -> (images [B,3,H',W'], list of targets)``."""

    def __init__(self, multi_scales: Optional[Sequence[int]] = None, policy: Optional[StopEpochPolicy] = None):
        self.multi_scales = [int(s) for s in multi_scales] if multi_scales else []
        self.policy = policy

    def set_epoch(self, epoch: int) -> None:
        if self.policy is not None:
            self.policy.set_epoch(epoch)

    def __call__(self, batch: List[Tuple[torch.Tensor, Dict]]) -> Tuple[torch.Tensor, List[Dict]]:
        shapes = {tuple(image.shape) for image, _ in batch}
        if len(shapes) > 1:
            raise ValueError(f"images of one batch must have one size after the transforms, got {sorted(shapes)}")
        images = torch.stack([image for image, _ in batch])
        targets = [target for _, target in batch]
        if self.multi_scales and (self.policy is None or self.policy.strong_augmentation):
            if self.policy is None:
                side = self.multi_scales[int(torch.randint(len(self.multi_scales), ()))]
            else:
                with self.policy.seeded(batch_key([t["image_id"] for t in targets])):
                    side = self.multi_scales[int(torch.randint(len(self.multi_scales), ()))]
            if images.shape[-2:] != (side, side):
                images = F.interpolate(images, size=(side, side))  # nearest, as the official collate
                size = torch.tensor([side, side], dtype=torch.int64)
                targets = [dict(target, size=size.clone()) for target in targets]
        return images, targets
