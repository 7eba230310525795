"""A sweep small enough for a test: drawn shapes at 64 px and an RT-DETR a few thousand weights wide."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from tests.learning.synthetic_shapes import write_shapes_dataset
from tests.learning.tiny_preset import shapes_spec, write_spec

TINY_MODEL = dict(hidden_dim=32, feat_channels=[32, 32, 32], dim_feedforward=64, dec_layers=2, num_queries=20,
                  num_select=20, dn_number=10, nheads=2)


def tiny_sweep_spec(root: Path, *, epochs: int = 2, searched=("train.optim.lr", "train.optim.weight_decay"),
                    automl: Optional[Dict[str, Any]] = None, train_count: int = 16, val_count: int = 8) -> Path:
    """Write data and spec.yaml under ``root``; results go to ``root/results``."""
    data = write_shapes_dataset(root / "data", train_count, val_count, size=64, seed=0)
    spec = shapes_spec(data, root / "results", size=64, epochs=epochs, batch_size=4)
    spec["model"].update(TINY_MODEL)
    spec["train"]["optim"]["warmup_steps"] = 2
    spec["dataset"]["workers"] = 1
    spec["automl"] = {"hyperparameters": list(searched), **(automl or {})}
    return write_spec(spec, root / "spec.yaml")
