"""A detection confusion matrix: detections matched one-to-one to ground truth at IoU >= 0.5.

Per image, detections scored at least ``score_threshold`` are matched to
ground-truth boxes regardless of class (Hungarian assignment on IoU with
scipy, pairs below ``iou_threshold`` dropped), so a box found with the wrong
class shows up off the diagonal.  Unmatched ground truth counts as
"background" predicted (a miss, last row); unmatched detections count as
"background" truth (a false alarm, last column).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` [N, 4] and ``b`` [M, 4] (x0, y0, x1, y1) -> [N, M]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


class ConfusionMatrix:
    """``matrix[predicted, true]`` counts over ``num_classes`` classes plus background (the last index)."""

    def __init__(self, num_classes: int, iou_threshold: float = 0.5, score_threshold: float = 0.5):
        self.num_classes = num_classes
        self.iou_threshold, self.score_threshold = iou_threshold, score_threshold
        self.matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)

    @property
    def background(self) -> int:
        return self.num_classes

    def add_image(self, pred_boxes: np.ndarray, pred_labels: Sequence[int], pred_scores: Sequence[float],
                  true_boxes: np.ndarray, true_labels: Sequence[int]) -> None:
        """One image: predictions (boxes [K, 4], labels, scores) and ground truth (boxes [G, 4], labels)."""
        keep = np.asarray(pred_scores, dtype=float) >= self.score_threshold
        pred_boxes = np.asarray(pred_boxes, dtype=float).reshape(-1, 4)[keep]
        pred_labels = np.asarray(pred_labels, dtype=int)[keep]
        true_boxes = np.asarray(true_boxes, dtype=float).reshape(-1, 4)
        true_labels = np.asarray(true_labels, dtype=int)
        iou = box_iou(pred_boxes, true_boxes)
        rows, cols = linear_sum_assignment(-iou) if iou.size else (np.array([], int), np.array([], int))
        matched = [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= self.iou_threshold]
        for r, c in matched:
            self.matrix[pred_labels[r], true_labels[c]] += 1
        matched_pred, matched_true = {r for r, _ in matched}, {c for _, c in matched}
        for r in range(len(pred_boxes)):
            if r not in matched_pred:
                self.matrix[pred_labels[r], self.background] += 1
        for c in range(len(true_boxes)):
            if c not in matched_true:
                self.matrix[self.background, true_labels[c]] += 1
