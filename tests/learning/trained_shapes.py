"""The tiny preset trained from scratch on the drawn shapes, once per test session.

Two tests need such a model: the learning test (does training learn at all?)
and the distillation test (its teacher).  Training it once for both saves about
two minutes of a 2-core suite.  64 px images, 15 epochs, one evaluation at the
end: measured val_mAP50 0.273 (chance is ~0), in about two minutes of one core.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from automl.spec import load_spec
from trainers.rtdetr.engine.trainer import train

from .synthetic_shapes import write_shapes_dataset
from .tiny_preset import shapes_spec, write_spec

SIZE, TRAIN_IMAGES, VAL_IMAGES, BATCH = 64, 128, 32, 8
EPOCHS, SEED, DATA_SEED = 15, 1234, 7


def train_shapes_model(root: Path) -> Dict[str, Any]:
    """Draw the shapes set under ``root`` and train the tiny preset on it with one torch thread.

    Returns ``{"data": write_shapes_dataset's paths, "summary": train's summary, "train_dir": Path}``.
    """
    data = write_shapes_dataset(root / "shapes", TRAIN_IMAGES, VAL_IMAGES, size=SIZE, seed=DATA_SEED)
    spec = shapes_spec(data, root / "results", size=SIZE, epochs=EPOCHS, batch_size=BATCH, seed=SEED)
    spec["train"]["validation_interval"] = EPOCHS          # one evaluation, at the end: evaluations cost time
    cfg = load_spec("rtdetr", write_spec(spec, root / "spec.yaml"), [], "train")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # see tests/conftest.py's one_thread
    try:
        summary = train(cfg, log=lambda _line: None)
    finally:
        torch.set_num_threads(threads)
    return {"data": data, "summary": summary, "train_dir": root / "results" / "train"}
