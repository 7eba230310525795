"""PResNet: the ResNet-vd backbone of RT-DETR (official ``presnet.py`` layout and key names).

The "vd" variant has a three-conv stem and an average-pooled shortcut on the
stride-2 blocks.  Module names match the official checkpoints
(``conv1.conv1_1``, ``res_layers.S.blocks.B.branch2a``, ``short.pool/conv``)
so their weights load without renaming.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .architecture import BackboneArch
from .layers import ConvNormLayer


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters (buffers, not parameters).

    Small per-GPU batches make BatchNorm statistics noisy; fine-tuning from
    ImageNet weights usually freezes them.  Same state-dict keys as BatchNorm2d.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d below ``module`` by a FrozenBatchNorm2d holding its values."""
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, module.eps)
        with torch.no_grad():
            if module.affine:
                frozen.weight.copy_(module.weight)
                frozen.bias.copy_(module.bias)
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        replaced = freeze_batch_norm(child)
        if replaced is not child:
            setattr(module, name, replaced)
    return module


def _shortcut(ch_in: int, ch_out: int, stride: int) -> nn.Module:
    if stride == 2:  # variant d: average-pool, then a 1x1 projection without stride
        return nn.Sequential(OrderedDict([("pool", nn.AvgPool2d(2, 2, 0, ceil_mode=True)),
                                          ("conv", ConvNormLayer(ch_in, ch_out, 1, 1))]))
    return ConvNormLayer(ch_in, ch_out, 1, stride)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, ch_in: int, ch_out: int, stride: int, projection: bool):
        super().__init__()
        self.branch2a = ConvNormLayer(ch_in, ch_out, 3, stride, act="relu")
        self.branch2b = ConvNormLayer(ch_out, ch_out, 3, 1)
        self.short = _shortcut(ch_in, ch_out, stride) if projection else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch2b(self.branch2a(x))
        # in place on the norm's output, which no backward needs: two memory passes less per block
        return F.relu_(out.add_(x if self.short is None else self.short(x)))


class BottleNeck(nn.Module):
    expansion = 4

    def __init__(self, ch_in: int, width: int, stride: int, projection: bool):
        super().__init__()
        # variant d puts the stride on the 3x3 conv, not on the first 1x1
        self.branch2a = ConvNormLayer(ch_in, width, 1, 1, act="relu")
        self.branch2b = ConvNormLayer(width, width, 3, stride, act="relu")
        self.branch2c = ConvNormLayer(width, width * self.expansion, 1, 1)
        self.short = _shortcut(ch_in, width * self.expansion, stride) if projection else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch2c(self.branch2b(self.branch2a(x)))
        return F.relu_(out.add_(x if self.short is None else self.short(x)))


class Blocks(nn.Module):
    """One stage: the first block changes width (and stride), the rest keep it."""

    def __init__(self, block: type, ch_in: int, width: int, count: int, stride: int):
        super().__init__()
        self.blocks = nn.ModuleList()
        for i in range(count):
            self.blocks.append(block(ch_in, width, stride if i == 0 else 1, projection=(i == 0)))
            ch_in = width * block.expansion

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class PResNet(nn.Module):
    """ResNet-vd returning the stages in ``arch.return_idx``.

    Input [B,3,H,W]; output a list of [B, C_i, H/s_i, W/s_i] with
    C_i = ``arch.out_channels`` and s_i = ``arch.out_strides``.
    """

    def __init__(self, arch: BackboneArch):
        super().__init__()
        block = BottleNeck if arch.block == "bottleneck" else BasicBlock
        stem = arch.stem_channels
        self.conv1 = nn.Sequential(OrderedDict([
            ("conv1_1", ConvNormLayer(3, stem[0], 3, 2, act="relu")),
            ("conv1_2", ConvNormLayer(stem[0], stem[1], 3, 1, act="relu")),
            ("conv1_3", ConvNormLayer(stem[1], stem[2], 3, 1, act="relu")),
        ]))
        self.return_idx = list(arch.return_idx)
        self.res_layers = nn.ModuleList()
        ch_in = stem[2]
        # stages after the last returned one would be computed for nothing
        for i in range(max(self.return_idx) + 1):
            self.res_layers.append(Blocks(block, ch_in, arch.stage_widths[i], arch.depths[i], 1 if i == 0 else 2))
            ch_in = arch.stage_widths[i] * block.expansion
        self.out_channels = arch.out_channels
        self.out_strides = arch.out_strides
        if arch.freeze_at >= 0:
            frozen = [self.conv1] + list(self.res_layers[: arch.freeze_at])
            for module in frozen:
                module.requires_grad_(False)
        if arch.freeze_norm:
            freeze_batch_norm(self)

    def forward(self, x: Tensor) -> List[Tensor]:
        x = F.max_pool2d(self.conv1(x), kernel_size=3, stride=2, padding=1)
        outs = []
        for idx, stage in enumerate(self.res_layers):
            x = stage(x)
            if idx in self.return_idx:
                outs.append(x)
        return outs
