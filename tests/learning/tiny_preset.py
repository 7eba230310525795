"""The tiny RT-DETR preset and the training recipe that learns the shapes set from scratch quickly.

Preset: resnet_18 backbone, hidden_dim 128, 3 decoder layers, 50 queries (the
size benchmarks/bench_learning.py also gives transformers' model).  Recipe,
and why: DETRs learn slowly from random weights at the official lr 1e-4 /
backbone 1e-5, so the whole network trains at a 1e-3 lr after a linear
warmup; BatchNorm trains (freeze_norm false: frozen statistics of a random
network would be meaningless); the heavy crops/zoom/colour augmentation of the
COCO recipe is off because the synthetic set has no scale or colour shift to
be robust to, and one input size keeps every step equally cheap.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import yaml

NUM_QUERIES = 50
DN_NUMBER = 50
LR = 1e-3
WARMUP_STEPS = 50
WEIGHT_DECAY = 1e-4
CLIP_GRAD_NORM = 0.1

MODEL: Dict[str, Any] = {
    "backbone": "resnet_18", "hidden_dim": 128, "feat_channels": [128, 128, 128], "nheads": 4,
    "dim_feedforward": 512, "expansion": 0.5, "dec_layers": 3, "num_queries": NUM_QUERIES,
    "num_select": NUM_QUERIES, "dn_number": DN_NUMBER, "freeze_norm": False,
}


def shapes_spec(data: Dict[str, Path], results_dir: Path, *, size: int, epochs: int, batch_size: int = 8,
                num_classes: int = 3, seed: int = 1234, workers: int = 0) -> Dict[str, Any]:
    """A train spec (plain dict, TAO layout) for the tiny preset on ``data`` from synthetic_shapes."""
    return {
        "results_dir": str(results_dir),
        "model": dict(MODEL),
        "dataset": {
            "train_data_sources": [{"image_dir": str(data["train_dir"]), "json_file": str(data["train"])}],
            "val_data_sources": {"image_dir": str(data["val_dir"]), "json_file": str(data["val"])},
            "test_data_sources": {"image_dir": str(data["val_dir"]), "json_file": str(data["val"])},
            "num_classes": num_classes, "batch_size": batch_size, "workers": max(1, workers),
            "augmentation": {"train_spatial_size": [size, size], "eval_spatial_size": [size, size],
                             "multi_scales": [size], "distortion_prob": 0.0, "iou_crop_prob": 0.0,
                             "zoom_out_prob": 0.0},
        },
        "train": {
            "num_epochs": epochs, "num_gpus": 1, "seed": seed, "checkpoint_interval": epochs,
            "clip_grad_norm": CLIP_GRAD_NORM,
            "optim": {"lr": LR, "lr_backbone": LR, "weight_decay": WEIGHT_DECAY, "warmup_steps": WARMUP_STEPS,
                      "lr_scheduler": "cosine"},
        },
    }


def write_spec(spec: Dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
