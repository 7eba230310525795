"""Optimizer and learning-rate schedule (``train.optim.*``).

Parameter groups follow the official RT-DETR recipe (research/rtdetr_model.md 1.6):

- parameters whose name starts with ``backbone.`` train at ``lr_backbone``,
  every other parameter at ``lr``;
- weights of normalisation layers (BatchNorm / LayerNorm / GroupNorm /
  InstanceNorm, found by module type, not by name) and every bias get weight
  decay 0, the rest ``weight_decay``.

Frozen parameters (``requires_grad=False``) are left out of every group.

The schedule is stepped once per optimizer step (iteration) and is a product
of two factors:

- linear warmup over ``warmup_steps`` **iterations**:
  ``min(1, (step + 1) / warmup_steps)``, as the official ``LinearWarmup``;
- a decay that counts **epochs** for ``MultiStep`` (``lr_steps`` are epoch
  milestones, multiply by ``lr_decay`` at each) and ``StepLR`` (multiply by
  ``lr_decay`` every ``lr_step_size`` epochs), as TAO's Lightning module which
  steps these schedulers with ``interval: "epoch"``; ``cosine`` anneals per
  iteration from 1 to 0 over the iterations after warmup.

So TAO's default ``lr_steps: [1000]`` with 72 epochs keeps the lr constant
after warmup, which is exactly the official recipe.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from trainers.errors import UserError

BACKBONE_PREFIX = "backbone."

# Module types whose weights are scale parameters of a normalisation: no weight decay.
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    NORM_TYPES = NORM_TYPES + (nn.RMSNorm,)

SCHEDULERS = ("multistep", "steplr", "cosine")


def _no_decay_names(model: nn.Module) -> set:
    """Names of the biases and of the parameters owned by normalisation layers."""
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if isinstance(module, NORM_TYPES) or param_name == "bias":
                names.add(full)
    return names


def build_param_groups(model: nn.Module, *, lr: float, lr_backbone: float, weight_decay: float,
                       backbone_prefix: str = BACKBONE_PREFIX) -> List[Dict]:
    """Split the trainable parameters into up to four groups (backbone or not x decay or not).

    Each group carries a ``name`` ("backbone", "backbone_no_decay", "head",
    "head_no_decay") so logs and tests can find it; empty groups are dropped.
    """
    no_decay = _no_decay_names(model)
    buckets: Dict[str, List[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if name.startswith(backbone_prefix) else "head"
        key = f"{part}_no_decay" if name in no_decay else part
        buckets.setdefault(key, []).append(param)
    groups = []
    for key in ("backbone", "backbone_no_decay", "head", "head_no_decay"):
        if key in buckets:
            groups.append({
                "name": key,
                "params": buckets[key],
                "lr": lr_backbone if key.startswith("backbone") else lr,
                "weight_decay": 0.0 if key.endswith("no_decay") else weight_decay,
            })
    if not groups:
        raise UserError("no trainable parameters: every parameter is frozen (check train.freeze and "
                        "model.train_backbone)")
    return groups


def _can_fuse(groups: List[Dict]) -> bool:
    """The fused AdamW kernel (one pass over each tensor instead of several) where every parameter allows it.

    On CPU it measured 1544 -> 321 ms for a resnet_18 optimizer step (benchmarks/bench_train_step.py);
    transformers' Trainer uses it by default too. It takes floating-point tensors on CPU or CUDA.
    """
    params = [p for group in groups for p in group["params"]]
    return bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def build_optimizer(model: nn.Module, optim_cfg) -> torch.optim.Optimizer:
    """AdamW (betas 0.9, 0.999 as the official recipe) or SGD (with ``optim.momentum``)."""
    groups = build_param_groups(model, lr=optim_cfg.lr, lr_backbone=optim_cfg.lr_backbone,
                                weight_decay=optim_cfg.weight_decay)
    name = str(optim_cfg.optimizer).lower()
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=optim_cfg.lr, betas=(0.9, 0.999), weight_decay=optim_cfg.weight_decay,
                                 fused=_can_fuse(groups))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=optim_cfg.lr, momentum=getattr(optim_cfg, "momentum", 0.9),
                               weight_decay=optim_cfg.weight_decay)
    raise UserError(f"train.optim.optimizer: {optim_cfg.optimizer!r} is not supported (AdamW, SGD)")


class WarmupDecaySchedule(LRScheduler):
    """Per-iteration lr multiplier: linear warmup (iterations) x MultiStep/StepLR (epochs) or cosine.

    ``step()`` is called after every optimizer step.  Its state is only the
    step counter, so a resumed run follows the schedule of its own config
    (the lr of each group is restored with the optimizer's state).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, kind: str, iters_per_epoch: int, num_epochs: int,
                 warmup_steps: int = 0, milestones: Sequence[int] = (), step_size: int = 1, gamma: float = 0.1,
                 last_epoch: int = -1):
        kind = kind.lower()
        if kind in ("multisteplr", "multi_step"):
            kind = "multistep"
        if kind in ("step", "step_lr"):
            kind = "steplr"
        if kind in ("cosineannealing", "cosineannealinglr", "cos"):
            kind = "cosine"
        if kind not in SCHEDULERS:
            raise UserError(f"train.optim.lr_scheduler: {kind!r} is not supported (MultiStep, StepLR, cosine)")
        if iters_per_epoch < 1:
            raise UserError("the training set yields no batch: check dataset.batch_size and the training data")
        if kind == "steplr" and step_size < 1:
            raise UserError(f"train.optim.lr_step_size must be >= 1 (got {step_size})")
        self.kind = kind
        self.iters_per_epoch = int(iters_per_epoch)
        self.total_steps = int(iters_per_epoch) * int(num_epochs)
        self.warmup_steps = max(0, int(warmup_steps))
        self.milestones = sorted(int(m) for m in milestones)
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """The lr multiplier at optimizer step ``step`` (0-based)."""
        warmup = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        epoch = step // self.iters_per_epoch
        if self.kind == "multistep":
            decay = self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        elif self.kind == "steplr":
            decay = self.gamma ** (epoch // self.step_size)
        else:
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, max(0, step - self.warmup_steps) / span)
            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        return warmup * decay

    def _lrs_at(self, step: int) -> List[float]:
        return [base * self.factor(step) for base in self.base_lrs]

    def get_lr(self) -> List[float]:
        return self._lrs_at(self.last_epoch)

    def state_dict(self) -> Dict:
        return {"last_epoch": self.last_epoch, "_step_count": self._step_count}

    def load_state_dict(self, state_dict: Dict) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        lrs = self._lrs_at(self.last_epoch)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs


def build_lr_scheduler(optimizer: torch.optim.Optimizer, optim_cfg, *, iters_per_epoch: int,
                       num_epochs: int) -> WarmupDecaySchedule:
    """The schedule of ``train.optim`` for ``iters_per_epoch`` optimizer steps per epoch."""
    return WarmupDecaySchedule(
        optimizer, kind=str(optim_cfg.lr_scheduler), iters_per_epoch=iters_per_epoch, num_epochs=num_epochs,
        warmup_steps=getattr(optim_cfg, "warmup_steps", 0), milestones=list(getattr(optim_cfg, "lr_steps", [])),
        step_size=getattr(optim_cfg, "lr_step_size", 1), gamma=getattr(optim_cfg, "lr_decay", 0.1))
