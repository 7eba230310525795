"""Hungarian matching between predictions and ground truth (scipy's linear_sum_assignment)."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from .box_ops import cxcywh_to_xyxy, generalized_box_iou

Indices = List[Tuple[Tensor, Tensor]]


class HungarianMatcher:
    """One-to-one assignment minimising a weighted focal-class, L1-box and GIoU cost.

    Contrary to the loss, the class cost is the focal-loss difference between
    predicting the target class and not predicting it (official matcher).
    Several prediction sets (all decoder layers and the encoder top-k) are
    costed in one batched computation and moved to the CPU once: scipy runs
    per set and image, the tensors do not.
    """

    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 alpha: float = 0.25, gamma: float = 2.0):
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def __call__(self, logits: Tensor, boxes: Tensor, labels: List[Tensor], gt_boxes: List[Tensor]) -> List[Indices]:
        """logits [S,B,Q,C], boxes [S,B,Q,4] (cxcywh), per-image labels [N_b] and boxes [N_b,4].

        Returns, for each of the S prediction sets, per image (query indices, target indices).
        """
        sets, batch, queries, _ = logits.shape
        sizes = [len(t) for t in labels]
        empty = (torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
        if sum(sizes) == 0:
            return [[empty for _ in range(batch)] for _ in range(sets)]
        tgt_ids = torch.cat(labels)
        tgt_boxes = torch.cat(gt_boxes).float()
        prob = logits.float().flatten(1, 2).sigmoid()[..., tgt_ids]  # [S, B*Q, T]
        neg = (1 - self.alpha) * prob ** self.gamma * -(1 - prob + 1e-8).log()
        pos = self.alpha * (1 - prob) ** self.gamma * -(prob + 1e-8).log()
        out_boxes = boxes.float().flatten(1, 2)  # [S, B*Q, 4]
        cost_bbox = torch.cdist(out_boxes, tgt_boxes.unsqueeze(0).expand(sets, -1, -1), p=1)
        cost_giou = -generalized_box_iou(cxcywh_to_xyxy(out_boxes.flatten(0, 1)),
                                         cxcywh_to_xyxy(tgt_boxes)).view(sets, batch * queries, -1)
        cost = self.cost_bbox * cost_bbox + self.cost_class * (pos - neg) + self.cost_giou * cost_giou
        cost = torch.nan_to_num(cost, nan=1e8, posinf=1e8, neginf=-1e8)
        cost = cost.view(sets, batch, queries, -1).cpu().numpy()
        offsets = np.cumsum([0] + sizes)
        result = []
        for s in range(sets):
            per_image = []
            for b in range(batch):
                if sizes[b] == 0:
                    per_image.append(empty)
                    continue
                rows, cols = linear_sum_assignment(cost[s, b, :, offsets[b]:offsets[b + 1]])
                per_image.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
            result.append(per_image)
        return result
