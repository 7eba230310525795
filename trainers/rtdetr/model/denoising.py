"""Contrastive denoising groups (DINO-style), as in the official ``denoising.py``.

Noised copies of the ground truth are fed to the decoder next to the normal
queries; positives (small noise) must be reconstructed, negatives (larger
noise) must be rejected.  The random calls happen in the official order, so a
seeded run reproduces the official (and transformers') noise exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from .box_ops import cxcywh_to_xyxy, inverse_sigmoid, xyxy_to_cxcywh


@dataclass
class DenoisingGroup:
    """Decoder inputs and bookkeeping of the denoising queries.

    queries [B, N_dn, D] class embeddings; boxes_unact [B, N_dn, 4] box logits;
    attn_mask [N_dn + Q, N_dn + Q] bool, True = may not attend;
    positive_idx: per image, the dn query index of each positive (len = num_gt * num_groups);
    num_groups; split [N_dn, Q].
    """

    queries: Tensor
    boxes_unact: Tensor
    attn_mask: Tensor
    positive_idx: List[Tensor]
    num_groups: int
    split: List[int]

    def meta(self) -> Dict:
        return {"dn_positive_idx": self.positive_idx, "dn_num_group": self.num_groups, "dn_num_split": self.split}


def build_denoising_group(targets: List[Dict[str, Tensor]], num_classes: int, num_queries: int,
                          class_embed: nn.Embedding, num_denoising: int, label_noise_ratio: float,
                          box_noise_scale: float) -> Optional[DenoisingGroup]:
    """targets: per image ``labels`` [N] and ``boxes`` [N,4] (normalised cxcywh)."""
    if num_denoising <= 0:
        return None
    num_gts = [len(t["labels"]) for t in targets]
    device = targets[0]["boxes"].device
    max_gt = max(num_gts)
    # A batch without any box still gets one padded (masked) group, so the
    # denoising embedding takes part in every step: skipping it on one DDP
    # rank hangs the others (official issue #672, fixed the same way).
    padded = max(max_gt, 1)
    num_groups = max(num_denoising // padded, 1)
    batch = len(num_gts)

    labels = torch.full([batch, padded], num_classes, dtype=torch.int32, device=device)
    boxes = torch.zeros([batch, padded, 4], device=device)
    pad_mask = torch.zeros([batch, padded], dtype=torch.bool, device=device)
    for i, n in enumerate(num_gts):
        if n:
            labels[i, :n] = targets[i]["labels"]
            boxes[i, :n] = targets[i]["boxes"]
            pad_mask[i, :n] = True
    labels = labels.tile([1, 2 * num_groups])
    boxes = boxes.tile([1, 2 * num_groups, 1])
    pad_mask = pad_mask.tile([1, 2 * num_groups])
    negative = torch.zeros([batch, padded * 2, 1], device=device)
    negative[:, padded:] = 1
    negative = negative.tile([1, num_groups, 1])
    positive = (1 - negative).squeeze(-1) * pad_mask
    positive_idx = torch.nonzero(positive)[:, 1]
    positive_idx = list(torch.split(positive_idx, [n * num_groups for n in num_gts]))
    num_dn = padded * 2 * num_groups

    if label_noise_ratio > 0:
        flip = torch.rand_like(labels, dtype=torch.float) < (label_noise_ratio * 0.5)
        new_labels = torch.randint_like(flip, 0, num_classes, dtype=labels.dtype)
        labels = torch.where(flip & pad_mask, new_labels, labels)

    if box_noise_scale > 0:
        corners = cxcywh_to_xyxy(boxes)
        half_wh = torch.tile(boxes[..., 2:] * 0.5, [1, 1, 2]) * box_noise_scale
        sign = torch.randint_like(boxes, 0, 2) * 2.0 - 1.0
        magnitude = torch.rand_like(boxes)
        magnitude = (magnitude + 1.0) * negative + magnitude * (1 - negative)
        corners = (corners + magnitude * sign * half_wh).clip(min=0.0, max=1.0)
        boxes = xyxy_to_cxcywh(corners)
    boxes_unact = inverse_sigmoid(boxes)

    queries = class_embed(labels)
    size = num_dn + num_queries
    mask = torch.zeros([size, size], dtype=torch.bool, device=device)
    mask[num_dn:, :num_dn] = True  # matching queries cannot see the ground truth copies
    for g in range(num_groups):  # groups cannot see each other
        start, end = padded * 2 * g, padded * 2 * (g + 1)
        mask[start:end, :start] = True
        mask[start:end, end:num_dn] = True
    return DenoisingGroup(queries, boxes_unact, mask, positive_idx, num_groups, [num_dn, num_queries])
