"""torchvision-style ResNet state dicts (ImageNet weights) -> PResNet-vd backbone names.

torchvision's ResNet differs from ResNet-vd in its stem (one 7x7 conv instead
of three 3x3) and its stride-2 shortcuts (a strided 1x1 conv instead of
avg-pool + 1x1); the residual stages line up block for block.  The stages are
mapped; the stem and classifier have no counterpart and are reported as
unexpected by the loader, the vd stem and the stage-1 projection of R18/R34
as missing.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping

from torch import Tensor

_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.(conv|bn)(\d)\.(.+)$")
_DOWNSAMPLE = re.compile(r"^layer(\d)\.(\d+)\.downsample\.([01])\.(.+)$")


def is_torchvision_resnet(state: Mapping[str, Tensor]) -> bool:
    return any(_BLOCK.match(key) for key in state) and not any(key.startswith("res_layers.") for key in state)


def map_torchvision_resnet(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Rename the residual stages; keys with no PResNet counterpart keep their names (reported later)."""
    mapped: Dict[str, Tensor] = {}
    for key, value in state.items():
        block = _BLOCK.match(key)
        down = _DOWNSAMPLE.match(key)
        if block:
            stage, index, kind, k, rest = block.groups()
            part = "conv" if kind == "conv" else "norm"
            mapped[f"res_layers.{int(stage) - 1}.blocks.{index}.branch2{'abc'[int(k) - 1]}.{part}.{rest}"] = value
        elif down:
            stage, index, which, rest = down.groups()
            part = "conv" if which == "0" else "norm"
            # stride-2 stages use the vd shortcut: pool, then the 1x1 ConvNorm under "conv"
            prefix = "short" if stage == "1" else "short.conv"
            mapped[f"res_layers.{int(stage) - 1}.blocks.{index}.{prefix}.{part}.{rest}"] = value
        else:
            mapped[key] = value
    return mapped
