"""Exponential moving average of the model's weights (``train.enable_ema``, ``train.ema.decay``).

As the official ``src/optim/ema.py``: after every optimizer step each float
entry of the state dict (parameters *and* BatchNorm running statistics)
becomes ``ema = d * ema + (1 - d) * model`` with a decay that ramps up,
``d = decay * (1 - exp(-updates / ramp))``, so the average does not drag the
random initial weights along for thousands of steps.  Integer entries
(``num_batches_tracked``) are copied.  Evaluation, checkpoints and export use
the EMA weights.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Dict

import torch
from torch import nn

from .distributed import unwrap_model

OFFICIAL_RAMP = 2000


class ModelEMA:
    """A frozen copy of the model that tracks the trained weights.

    ``module`` is the averaged model (eval mode, no gradients); ``updates`` is
    the number of optimizer steps folded in.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, ramp: int = OFFICIAL_RAMP):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(unwrap_model(model)).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = float(decay)
        self.ramp = int(ramp)
        self.updates = 0

    def current_decay(self) -> float:
        """The decay used by the next-to-be-counted update (``updates`` already incremented)."""
        return self.decay * (1.0 - math.exp(-self.updates / self.ramp))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        source = unwrap_model(model).state_dict()
        for key, averaged in self.module.state_dict().items():
            value = source[key].detach()
            if averaged.dtype.is_floating_point:
                averaged.mul_(d).add_(value.to(averaged.device, averaged.dtype), alpha=1.0 - d)
            else:
                averaged.copy_(value.to(averaged.device))

    def state_dict(self) -> Dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay, "ramp": self.ramp}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
