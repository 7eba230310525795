"""What a training checkpoint holds beyond the weights, and how a run picks up from it.

The payload follows the keys documented in :mod:`trainers.rtdetr.checkpoint`:

- ``model``: the weights to run, the EMA weights when EMA is on;
- ``train_model``: the raw (non-averaged) weights, only when EMA is on;
- ``ema``: ``{"updates", "decay", "ramp"}`` (the averaged weights are ``model``);
- ``optimizer``, ``lr_scheduler``, ``grad_scaler``: their state dicts;
- ``epoch`` (the 0-based epoch just finished), ``global_step`` (optimizer steps),
  ``best_metric`` (best val_mAP50 so far, or null), ``best_epoch``;
- ``rng``: one entry per process (rank order) holding the Python, NumPy,
  torch CPU and CUDA generator states as tensors and plain numbers, so the
  file loads with ``weights_only=True``;
- ``model_config``, ``num_classes``, ``category_ids``, ``class_names``.

Restoring all of it makes a resumed run produce the same weights as one that
was never interrupted (tests/engine/test_trainer.py checks this).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from .distributed import unwrap_model
from .ema import ModelEMA


def capture_rng_state() -> Dict[str, Any]:
    """This process's random generator states, as tensors and plain numbers."""
    version, mt_state, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": {"version": int(version), "state": torch.tensor(mt_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` captured."""
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss_next"]))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_state_for_rank(states: List[Dict[str, Any]], rank: int) -> Optional[Dict[str, Any]]:
    """This rank's saved RNG state; rank 0's when the job had fewer processes; None when nothing was saved."""
    if not states:
        return None
    return states[rank] if rank < len(states) else states[0]


def training_payload(*, model: nn.Module, ema: Optional[ModelEMA], optimizer: torch.optim.Optimizer,
                     lr_scheduler, grad_scaler: Optional[torch.amp.GradScaler], epoch: int, global_step: int,
                     best_metric: Optional[float], best_epoch: Optional[int], rng: List[Dict[str, Any]],
                     model_config: Dict[str, Any], num_classes: int, category_ids: List[int],
                     class_names: List[str]) -> Dict[str, Any]:
    """Everything :func:`restore_training_state` needs, plus what inference and export need."""
    raw = unwrap_model(model).state_dict()
    payload: Dict[str, Any] = {
        "model": ema.module.state_dict() if ema is not None else raw,
        "model_config": model_config,
        "num_classes": int(num_classes),
        "category_ids": [int(c) for c in category_ids],
        "class_names": [str(n) for n in class_names],
        "epoch": int(epoch),
        "global_step": int(global_step),
        "best_metric": None if best_metric is None else float(best_metric),
        "best_epoch": None if best_epoch is None else int(best_epoch),
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": lr_scheduler.state_dict(),
        "grad_scaler": grad_scaler.state_dict() if grad_scaler is not None else {},
        "rng": rng,
    }
    arch = getattr(unwrap_model(model), "arch", None)
    if arch is not None:  # lets load_model, export and inference rebuild the model from the file alone
        payload["architecture"] = arch.to_dict()
    if ema is not None:
        payload["train_model"] = raw
        payload["ema"] = {"updates": ema.updates, "decay": ema.decay, "ramp": ema.ramp}
    return payload


@dataclass
class ResumePoint:
    """Where the resumed run continues."""

    start_epoch: int
    global_step: int
    best_metric: Optional[float]
    best_epoch: Optional[int]
    rng: List[Dict[str, Any]]


def restore_training_state(payload: Dict[str, Any], *, model: nn.Module, ema: Optional[ModelEMA],
                           optimizer: torch.optim.Optimizer, lr_scheduler,
                           grad_scaler: Optional[torch.amp.GradScaler]) -> ResumePoint:
    """Load weights, EMA, optimizer, schedule and scaler from a payload of :func:`training_payload`."""
    raw = payload["train_model"] if "train_model" in payload else payload["model"]
    unwrap_model(model).load_state_dict(raw)
    if ema is not None:
        ema.module.load_state_dict(payload["model"])
        ema.updates = int(payload.get("ema", {}).get("updates", 0))
    optimizer.load_state_dict(payload["optimizer"])
    lr_scheduler.load_state_dict(payload["lr_scheduler"])
    if grad_scaler is not None and payload.get("grad_scaler"):
        grad_scaler.load_state_dict(payload["grad_scaler"])
    return ResumePoint(start_epoch=int(payload["epoch"]) + 1, global_step=int(payload.get("global_step", 0)),
                       best_metric=payload.get("best_metric"), best_epoch=payload.get("best_epoch"),
                       rng=list(payload.get("rng") or []))
