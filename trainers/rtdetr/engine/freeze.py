"""Frozen parts of the model: ``train.freeze`` (module names) and ``model.train_backbone: false``.

A frozen module gets no gradient (its parameters leave the optimizer) and
stays in eval mode during training, so its BatchNorm statistics, which are
weights too, do not drift either.  ``model.freeze_at`` / ``freeze_norm`` are
the backbone's own settings and are applied when the model is built.
"""
from __future__ import annotations

from typing import List, Sequence

from torch import nn

from trainers.errors import UserError


def frozen_module_names(freeze: Sequence[str], train_backbone: bool) -> List[str]:
    names = [str(name).strip().rstrip(".") for name in freeze if str(name).strip()]
    if not train_backbone and "backbone" not in names:
        names.append("backbone")
    return names


def apply_freeze(model: nn.Module, freeze: Sequence[str], train_backbone: bool = True) -> List[str]:
    """Freeze the named modules (dotted paths such as ``backbone`` or ``decoder.dec_bbox_head``).

    Returns the names frozen; an unknown name is a UserError that lists the
    model's top-level modules.
    """
    names = frozen_module_names(freeze, train_backbone)
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules:
            top = ", ".join(child for child, _ in model.named_children())
            raise UserError(f"train.freeze: the model has no module {name!r} (top-level modules: {top})")
        for param in modules[name].parameters():
            param.requires_grad_(False)
    return names


def keep_frozen_in_eval(model: nn.Module, names: Sequence[str]) -> None:
    """Call after ``model.train()``: frozen modules go back to eval mode."""
    modules = dict(model.named_modules())
    for name in names:
        modules[name].eval()
