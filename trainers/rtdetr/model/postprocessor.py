"""From normalised predictions to scored boxes in image pixels."""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from .box_ops import cxcywh_to_xyxy


class PostProcessor(nn.Module):
    """Top ``num_select`` (query, class) pairs by sigmoid score; no NMS, no threshold.

    ``forward(outputs, orig_sizes)``: orig_sizes [B,2] as (width, height).
    Returns per image ``{"scores" [K], "labels" [K] (contiguous), "boxes" [K,4]
    (x0, y0, x1, y1 in pixels)}``; with ``deploy=True`` the tuple
    ``(labels [B,K], boxes [B,K,4], scores [B,K])`` for export.  One query may
    appear with several labels, as in the official postprocessor.
    """

    def __init__(self, num_select: int = 300, deploy: bool = False):
        super().__init__()
        self.num_select, self.deploy = num_select, deploy

    def forward(self, outputs: Dict[str, Tensor], orig_sizes: Tensor):
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        num_classes = logits.shape[-1]
        scale = orig_sizes.to(boxes.dtype).repeat(1, 2).unsqueeze(1)
        boxes = cxcywh_to_xyxy(boxes) * scale
        k = min(self.num_select, logits.shape[1] * num_classes)
        scores, index = torch.topk(logits.sigmoid().flatten(1), k, dim=-1)
        # integer mod written with floor division: older TensorRT lacks Mod on int64
        query = torch.div(index, num_classes, rounding_mode="floor")
        labels = index - query * num_classes
        boxes = boxes.gather(1, query.unsqueeze(-1).expand(-1, -1, 4))
        if self.deploy:
            return labels, boxes, scores
        return [{"scores": s, "labels": lab, "boxes": b} for s, lab, b in zip(scores, labels, boxes)]
