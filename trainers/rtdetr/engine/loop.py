"""One training epoch: forward under autocast, fp32 loss, accumulate, clip, step, EMA.

An optimizer step happens every ``accumulation_steps`` batches (and after the
last batch of the epoch); the loss of each batch is divided by the size of
its accumulation group so a group's gradient is the mean over its batches,
as one large batch would give.  Under DDP the gradients are all-reduced
only on the batch that ends a group (``no_sync`` on the others).

The step order: unscale (fp16) -> clip_grad_norm -> optimizer step ->
scaler update -> lr schedule step -> EMA update.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from trainers.errors import UserError

from . import distributed
from .ema import ModelEMA
from .freeze import keep_frozen_in_eval
from .precision import autocast, to_float32
from .progress import ProgressBar


class NonFiniteLossError(UserError):
    """The loss became NaN or infinite; training stops instead of writing broken weights."""


@dataclass
class EpochStats:
    """What an epoch did: the mean of each loss term (and ``loss``, their sum) over its batches."""

    losses: Dict[str, float] = field(default_factory=dict)
    images: int = 0
    batches: int = 0
    seconds: float = 0.0
    global_step: int = 0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _to_device(targets: Sequence[Dict], device: torch.device) -> List[Dict]:
    return [{key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
             for key, value in target.items()} for target in targets]


def _check_finite(loss: torch.Tensor, loss_dict: Dict[str, torch.Tensor], epoch: int, step: int,
                  before_any_update: bool = False) -> None:
    """Every process agrees on whether to stop, so no rank is left waiting in an all-reduce.

    ``before_any_update``: no optimizer step has run yet, so the learning rate cannot be the cause.
    """
    bad = torch.tensor(0.0 if torch.isfinite(loss) else 1.0, device=loss.device)
    if distributed.is_distributed():
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    if bad.item() > 0:
        bad_terms = [f"{k}={v.item():.4g}" for k, v in loss_dict.items() if not torch.isfinite(v)]
        # A few terms name the culprit; all ~30 of a NaN'd model would push the hint out of a one-line reason.
        terms = ", ".join(bad_terms[:3]) + (f" and {len(bad_terms) - 3} more" if len(bad_terms) > 3 else "")
        raise NonFiniteLossError(
            f"the training loss is not finite at epoch {epoch}, step {step} "
            f"(loss={loss.item():.4g}{'; ' + terms if terms else '; on another process'}); "
            + ("before any weight update, so the starting weights (train.pretrained_model_path, the resumed "
               "checkpoint) or the data are the cause; check them" if before_any_update else
               "try a lower train.optim.lr, train.precision fp32 or bf16, or a smaller train.clip_grad_norm"))


def train_one_epoch(*, model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer, lr_scheduler,
                    grad_scaler: torch.amp.GradScaler, ema: Optional[ModelEMA], loader, device: torch.device,
                    precision: str, epoch: int, global_step: int, accumulation_steps: int = 1,
                    clip_grad_norm: float = 0.0, ema_every_n_steps: int = 1, frozen: Sequence[str] = (),
                    show_progress: Optional[bool] = None) -> EpochStats:
    """Train ``model`` (DDP-wrapped or not) over ``loader`` once; returns the epoch's stats."""
    model.train()
    criterion.train()
    keep_frozen_in_eval(distributed.unwrap_model(model), frozen)
    accumulation_steps = max(1, int(accumulation_steps))
    num_batches = len(loader)
    full_groups_end = (num_batches // accumulation_steps) * accumulation_steps
    trainable = [p for p in model.parameters() if p.requires_grad]
    sums: Dict[str, torch.Tensor] = {}
    stats = EpochStats(global_step=global_step)
    bar = ProgressBar(total=num_batches, description=f"epoch {epoch}",
                      enabled=show_progress if distributed.is_main_process() else False)
    started = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)

    for index, (images, targets) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        targets = _to_device(targets, device)
        ends_group = (index + 1) % accumulation_steps == 0 or index + 1 == num_batches
        group_size = accumulation_steps if index < full_groups_end else num_batches - full_groups_end
        no_sync = getattr(model, "no_sync", None)
        sync = contextlib.nullcontext() if ends_group or no_sync is None else no_sync()
        with sync:
            with autocast(precision, device):
                outputs = model(images, targets)
            # The criterion and its matcher run in fp32, outside autocast.
            loss_dict = criterion(to_float32(outputs), targets)
            loss = sum(loss_dict.values())
            _check_finite(loss, loss_dict, epoch, index,
                          before_any_update=global_step == 0 and index < accumulation_steps)
            grad_scaler.scale(loss / group_size).backward()

        if ends_group:
            if clip_grad_norm and clip_grad_norm > 0:
                grad_scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, clip_grad_norm)
            grad_scaler.step(optimizer)
            grad_scaler.update()
            optimizer.zero_grad(set_to_none=True)
            lr_scheduler.step()
            stats.global_step += 1
            if ema is not None and stats.global_step % max(1, ema_every_n_steps) == 0:
                ema.update(model)

        for key, value in loss_dict.items():
            sums[key] = sums.get(key, 0.0) + value.detach().float()
        sums["loss"] = sums.get("loss", 0.0) + loss.detach().float()
        stats.images += int(images.shape[0])
        stats.batches += 1
        bar.update(images=int(images.shape[0]), loss=loss.item())

    bar.close()
    stats.seconds = time.perf_counter() - started
    means = {key: value / max(1, stats.batches) for key, value in sums.items()}
    stats.losses = {key: float(value) for key, value in distributed.reduce_dict_mean(means).items()}
    if not all(math.isfinite(v) for v in stats.losses.values()):  # pragma: no cover - caught per step above
        raise NonFiniteLossError(f"the mean training loss of epoch {epoch} is not finite")
    return stats
