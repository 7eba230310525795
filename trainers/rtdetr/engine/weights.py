"""Start from pretrained weights: ``train.pretrained_model_path`` and ``model.pretrained_backbone_path``.

Both read a checkpoint with :func:`trainers.rtdetr.checkpoint.load_checkpoint`
(ours, as written by ``tao-automl import-weights`` or by training, or an
official layout: ``ema.module`` / ``model`` / ``state_dict``) and load every
entry whose name *and shape* match.  Entries of another shape are skipped and
reported, which is what fine-tuning needs: a COCO model's 80-class head does
not fit a 3-class model, everything else does (the official ``-t`` tuning).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple

import torch
from torch import nn

from trainers.errors import UserError
from trainers.rtdetr.checkpoint import load_checkpoint, model_state_from

from trainers.rtdetr.weights.torchvision_resnet import is_torchvision_resnet, map_torchvision_resnet

from .distributed import unwrap_model

LOG = logging.getLogger(__name__)
SHOWN_NAMES = 8  # how many key names a log line lists before "... and N more"


@dataclass
class LoadReport:
    """What a load did: names copied, names the model has but the file lacks, names only the file has,
    and names present in both with different shapes (file shape, model shape)."""

    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    skipped: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)

    def summary(self, what: str) -> str:
        def names(items: List[str]) -> str:
            shown = ", ".join(items[:SHOWN_NAMES])
            return shown + (f" ... and {len(items) - SHOWN_NAMES} more" if len(items) > SHOWN_NAMES else "")
        lines = [f"{what}: loaded {len(self.loaded)} tensors"]
        if self.skipped:
            lines.append("  skipped (shape differs): " + names(
                [f"{n} {list(a)} vs {list(b)}" for n, a, b in self.skipped]))
        if self.missing:
            lines.append(f"  missing (kept as initialised): {names(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected (ignored): {names(self.unexpected)}")
        return "\n".join(lines)


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """``state`` without ``prefix`` on its keys, when every key has it."""
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix):]: value for key, value in state.items()}
    return dict(state)


def load_matching_weights(module: nn.Module, state: Mapping[str, torch.Tensor]) -> LoadReport:
    """Copy the entries of ``state`` whose name and shape match ``module``'s; report the rest."""
    state = _strip_prefix(state, "module.")  # saved from inside DistributedDataParallel
    own = module.state_dict()
    report = LoadReport()
    accepted = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if name not in own:
            report.unexpected.append(name)
        elif tuple(value.shape) != tuple(own[name].shape):
            report.skipped.append((name, tuple(value.shape), tuple(own[name].shape)))
        else:
            accepted[name] = value
            report.loaded.append(name)
    module.load_state_dict(accepted, strict=False)
    skipped = {name for name, _, _ in report.skipped}
    report.missing = [name for name in own if name not in accepted and name not in skipped]
    return report


def load_pretrained_model(model: nn.Module, path: str) -> LoadReport:
    """``train.pretrained_model_path``: the whole model, shape-matched."""
    payload = load_checkpoint(path)
    report = load_matching_weights(unwrap_model(model), model_state_from(payload, path))
    if not report.loaded:
        raise UserError(f"train.pretrained_model_path: {path}: no weight matches this model "
                        f"(is it an RT-DETR checkpoint? convert official or Hugging Face files with "
                        f"`tao-automl import-weights`)")
    LOG.info(report.summary(f"pretrained model {path}"))
    return report


def load_pretrained_backbone(model: nn.Module, path: str) -> LoadReport:
    """``model.pretrained_backbone_path``: weights for ``model.backbone`` (keys with or without ``backbone.``)."""
    payload = load_checkpoint(path)
    state = model_state_from(payload, path)
    if any(key.startswith("backbone.") for key in state):
        state = {key[len("backbone."):]: value for key, value in state.items() if key.startswith("backbone.")}
    if is_torchvision_resnet(state):  # ImageNet weights in torchvision's names
        state = map_torchvision_resnet(state)
    backbone = unwrap_model(model).backbone
    report = load_matching_weights(backbone, state)
    if not report.loaded:
        raise UserError(f"model.pretrained_backbone_path: {path}: no weight matches the backbone "
                        f"(expected a PResNet-vd or torchvision ResNet state dict)")
    LOG.info(report.summary(f"pretrained backbone {path}"))
    return report
