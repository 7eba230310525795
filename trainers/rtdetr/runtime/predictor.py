"""What every runtime (PyTorch, ONNX Runtime, TensorRT) offers evaluate, inference and benchmark.

A predictor takes a preprocessed batch and returns the deploy outputs of the
exported graph, so every runtime is compared on the same three arrays:

- ``images``: float32 ``[B, 3, H, W]``, normalised as in training, H x W the
  predictor's ``input_size`` when it is fixed;
- returns ``(labels [B, K] int64, boxes [B, K, 4] float32, scores [B, K] float32)``:
  contiguous labels, boxes as ``x0, y0, x1, y1`` in pixels of the network
  input (``W x H``), K = ``num_select``, sorted by score.

Callers map boxes to original image pixels with :func:`scale_boxes`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np


@dataclass
class ModelInfo:
    """What a runtime needs besides the graph: classes and the input it was built for."""

    category_ids: List[int]
    class_names: List[str]
    num_select: int
    input_size: Optional[Tuple[int, int]] = None   # (height, width); None when any size is accepted
    fixed_batch: Optional[int] = None              # None: dynamic batch
    extra: dict = field(default_factory=dict)


class Predictor:
    """Base class: ``predict(images) -> (labels, boxes, scores)`` as numpy arrays."""

    #: "pytorch", "onnxruntime" or "tensorrt"
    runtime: str = ""

    def __init__(self, path: str, info: ModelInfo):
        self.path, self.info = str(path), info

    def predict(self, images: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release device memory / sessions (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def scale_boxes(boxes: np.ndarray, input_size: Tuple[int, int], orig_sizes: np.ndarray) -> np.ndarray:
    """Boxes ``[B, K, 4]`` in input pixels (``input_size`` = (H, W)) -> pixels of each original image.

    ``orig_sizes``: ``[B, 2]`` as (width, height), the convention of the data targets.
    """
    height, width = input_size
    scale = np.asarray(orig_sizes, dtype=np.float32) / np.array([width, height], dtype=np.float32)
    return boxes * np.tile(scale, 2)[:, None, :]


def predict_any_batch(predictor: Predictor, images: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``predictor.predict`` for a batch of any size, also when the model was built for a fixed batch.

    A fixed-batch model gets the images in chunks of its batch, the last one
    padded with zeros; the padding's detections are dropped.
    """
    fixed = predictor.info.fixed_batch
    if not fixed or len(images) == fixed:
        return predictor.predict(images)
    parts = []
    for start in range(0, len(images), fixed):
        chunk = images[start:start + fixed]
        count = len(chunk)
        if count < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - count, *chunk.shape[1:]), dtype=chunk.dtype)])
        parts.append([output[:count] for output in predictor.predict(chunk)])
    labels, boxes, scores = (np.concatenate(outputs) for outputs in zip(*parts))
    return labels, boxes, scores
