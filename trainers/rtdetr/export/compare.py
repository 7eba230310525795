"""How far apart two runtimes' detections are, without caring about the order of near-tied detections.

Top-k orders detections by score; two runtimes that differ by 1e-6 in a score
may swap two nearly tied detections (or, at the cut, keep a different one).
Comparing row by row would then report a whole box as the difference, so each
detection of one runtime is matched to the closest detection of the other with
the same label and a score within the tolerance.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

Detections = Tuple[np.ndarray, np.ndarray, np.ndarray]  # labels [B,K], boxes [B,K,4], scores [B,K]


def max_abs_difference(actual: Detections, expected: Detections, input_size: Tuple[int, int],
                       tolerance: float = 1e-3) -> float:
    """Largest difference in a score or a box coordinate (in units of the input size, so 1.0 = the full
    width or height) between matched detections; ``inf`` when a detection has no counterpart.

    Detections scored within ``tolerance`` of the lowest score the other runtime kept are not compared:
    either runtime may legitimately keep a different one of those at the top-k cut, and among such dense
    scores the closest candidate need not be the same detection.
    """
    labels_a, boxes_a, scores_a = (np.asarray(x) for x in actual)
    labels_e, boxes_e, scores_e = (np.asarray(x) for x in expected)
    if labels_a.shape != labels_e.shape or boxes_a.shape != boxes_e.shape:
        return float("inf")
    height, width = input_size
    scale = np.array([width, height, width, height], dtype=np.float64)
    worst = 0.0
    for image in range(labels_a.shape[0]):
        worst = max(worst, _one_way(labels_a[image], boxes_a[image] / scale, scores_a[image],
                                    labels_e[image], boxes_e[image] / scale, scores_e[image], tolerance),
                    _one_way(labels_e[image], boxes_e[image] / scale, scores_e[image],
                             labels_a[image], boxes_a[image] / scale, scores_a[image], tolerance))
    return worst


def _one_way(labels, boxes, scores, other_labels, other_boxes, other_scores, tolerance: float) -> float:
    """Worst difference of each detection of one image to its best counterpart in the other's."""
    cut = float(other_scores.min()) if other_scores.size else 0.0
    worst = 0.0
    for label, box, score in zip(labels, boxes, scores):
        if score <= cut + tolerance:
            continue
        candidates = (other_labels == label) & (np.abs(other_scores - score) <= tolerance)
        if not candidates.any():
            return float("inf")
        box_diff = np.abs(other_boxes[candidates] - box).max(axis=1)
        best = int(np.argmin(box_diff))
        worst = max(worst, float(box_diff[best]), float(abs(other_scores[candidates][best] - score)))
    return worst
