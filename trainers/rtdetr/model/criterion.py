"""RT-DETR training loss: varifocal class loss, L1 and GIoU box losses.

Terms (each already multiplied by its weight; the training loss is their sum):
``loss_vfl``, ``loss_bbox``, ``loss_giou`` for the last decoder layer, the same
with ``_aux_{i}`` for earlier layers, ``_enc_0`` for the encoder's top-k
proposals and ``_dn_{i}`` for the denoising queries of layer i (official v2
names).  Every prediction set is matched separately, but all sets are costed
and lossed in batched tensor operations rather than one Python loop per set.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .box_ops import cxcywh_to_xyxy, paired_iou
from .matcher import HungarianMatcher, Indices


class RTDETRCriterion(nn.Module):
    def __init__(self, num_classes: int, matcher: HungarianMatcher, vfl_weight: float = 1.0,
                 bbox_weight: float = 5.0, giou_weight: float = 2.0, alpha: float = 0.75, gamma: float = 2.0,
                 aux_loss: bool = True):
        super().__init__()
        self.num_classes, self.matcher = num_classes, matcher
        self.weights = {"loss_vfl": vfl_weight, "loss_bbox": bbox_weight, "loss_giou": giou_weight}
        self.alpha, self.gamma, self.aux_loss = alpha, gamma, aux_loss

    def forward(self, outputs: Dict, targets: List[Dict[str, Tensor]]) -> Dict[str, Tensor]:
        """outputs: the model's training dict; targets: per image ``labels`` [N], ``boxes`` [N,4] cxcywh."""
        labels = [t["labels"] for t in targets]
        gt_boxes = [t["boxes"] for t in targets]
        num_boxes = self._normalizer(labels, outputs["pred_logits"].device)

        dec_logits, dec_boxes = outputs["dec_logits"], outputs["dec_boxes"]
        if not self.aux_loss:
            dec_logits, dec_boxes = dec_logits[-1:], dec_boxes[-1:]
        names = [f"_aux_{i}" for i in range(len(dec_logits) - 1)] + [""]
        set_logits, set_boxes = dec_logits, dec_boxes
        if self.aux_loss:
            set_logits = torch.cat([dec_logits, outputs["enc_logits"][None]])
            set_boxes = torch.cat([dec_boxes, outputs["enc_boxes"][None]])
            names.append("_enc_0")
        indices = self.matcher(set_logits, set_boxes, labels, gt_boxes)
        losses = self._named(names, self._set_losses(set_logits, set_boxes, indices, labels, gt_boxes, num_boxes))

        if "dn_meta" in outputs and self.aux_loss:
            meta = outputs["dn_meta"]
            dn_indices = self._denoising_indices(meta, labels)
            dn_logits, dn_boxes = outputs["dn_logits"], outputs["dn_boxes"]
            dn_names = [f"_dn_{i}" for i in range(len(dn_logits))]
            losses.update(self._named(dn_names, self._set_losses(
                dn_logits, dn_boxes, [dn_indices] * len(dn_logits), labels, gt_boxes,
                num_boxes * meta["dn_num_group"])))
        return losses

    def _named(self, suffixes: Sequence[str], per_set: Dict[str, Tensor]) -> Dict[str, Tensor]:
        return {name + suffix: values[i] * self.weights[name]
                for name, values in per_set.items() for i, suffix in enumerate(suffixes)}

    @staticmethod
    def _normalizer(labels: List[Tensor], device: torch.device) -> float:
        """Boxes per process, averaged over processes, at least 1 (the official normaliser)."""
        count = torch.tensor([float(sum(len(t) for t in labels))], device=device)
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(count)
            world = dist.get_world_size()
        return max(count.item() / world, 1.0)

    @staticmethod
    def _denoising_indices(meta: Dict, labels: List[Tensor]) -> Indices:
        """Denoising queries are matched by construction: positive k of group g is ground truth k."""
        indices = []
        for positive_idx, gt in zip(meta["dn_positive_idx"], labels):
            gt_idx = torch.arange(len(gt), dtype=torch.int64, device=gt.device).tile(meta["dn_num_group"])
            indices.append((positive_idx, gt_idx))
        return indices

    def _set_losses(self, logits: Tensor, boxes: Tensor, indices: List[Indices], labels: List[Tensor],
                    gt_boxes: List[Tensor], num_boxes: float) -> Dict[str, Tensor]:
        """logits [S,B,Q,C], boxes [S,B,Q,4], indices per set and image -> each loss as a [S] vector."""
        sets, batch, queries, classes = logits.shape
        device = logits.device
        offsets = torch.cumsum(torch.tensor([0] + [len(t) for t in labels]), 0).tolist()
        set_idx, batch_idx, query_idx, target_idx = [], [], [], []
        for s, per_image in enumerate(indices):
            for b, (q, t) in enumerate(per_image):
                set_idx.append(torch.full_like(q, s))
                batch_idx.append(torch.full_like(q, b))
                query_idx.append(q)
                target_idx.append(t + offsets[b])
        set_idx, batch_idx, query_idx, target_idx = (torch.cat(x).to(device) if x else
                                                     torch.zeros(0, dtype=torch.int64, device=device)
                                                     for x in (set_idx, batch_idx, query_idx, target_idx))
        all_labels = torch.cat(labels).to(device) if labels else torch.zeros(0, dtype=torch.int64, device=device)
        all_boxes = torch.cat(gt_boxes).to(device).float() if gt_boxes else torch.zeros(0, 4, device=device)

        logits = logits.float()
        src_boxes = boxes[set_idx, batch_idx, query_idx].float()
        tgt_boxes = all_boxes[target_idx]
        iou, giou = paired_iou(cxcywh_to_xyxy(src_boxes), cxcywh_to_xyxy(tgt_boxes))

        # varifocal: the target score of a matched query is its IoU on its class, 0 elsewhere
        target = torch.zeros_like(logits)
        target_score = torch.zeros_like(logits)
        cls = all_labels[target_idx]
        target[set_idx, batch_idx, query_idx, cls] = 1.0
        target_score[set_idx, batch_idx, query_idx, cls] = iou.detach()
        weight = self.alpha * logits.detach().sigmoid().pow(self.gamma) * (1 - target) + target_score
        vfl = F.binary_cross_entropy_with_logits(logits, target_score, weight=weight, reduction="none")
        vfl = vfl.mean(2).sum((1, 2)) * queries / num_boxes

        l1 = torch.zeros(sets, device=device).index_add(
            0, set_idx, F.l1_loss(src_boxes, tgt_boxes, reduction="none").sum(-1)) / num_boxes
        giou_loss = torch.zeros(sets, device=device).index_add(0, set_idx, 1 - giou) / num_boxes
        if set_idx.numel() == 0:
            # keep the box heads in the graph so every DDP rank reduces the same parameters
            l1 = l1 + 0.0 * boxes.float().sum()
        return {"loss_vfl": vfl, "loss_bbox": l1, "loss_giou": giou_loss}
