"""HybridEncoder: AIFI (attention on the coarsest level) + CCFM (CNN cross-scale fusion).

Official ``hybrid_encoder.py`` layout and key names (``input_proj.I.conv/norm``,
``encoder.I.layers.J``, ``lateral_convs``, ``fpn_blocks``, ``downsample_convs``,
``pan_blocks``).
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .architecture import EncoderArch
from .attention import SelfAttention
from .layers import ConvNormLayer, activation


class RepVggBlock(nn.Module):
    """3x3 conv-BN + 1x1 conv-BN, summed; :meth:`fuse` folds both into one biased 3x3 conv for deployment."""

    def __init__(self, channels: int, act: str):
        super().__init__()
        self.conv1 = ConvNormLayer(channels, channels, 3, 1, padding=1)
        self.conv2 = ConvNormLayer(channels, channels, 1, 1, padding=0)
        self.act = activation(act)
        self.conv: nn.Conv2d | None = None

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x) if self.conv is not None else self.conv1(x) + self.conv2(x)
        return self.act(y)

    @torch.no_grad()
    def fuse(self) -> None:
        kernel3, bias3 = _fold_bn(self.conv1)
        kernel1, bias1 = _fold_bn(self.conv2)
        channels = kernel3.shape[0]
        self.conv = nn.Conv2d(channels, channels, 3, 1, padding=1).to(kernel3)
        self.conv.weight.copy_(kernel3 + F.pad(kernel1, [1, 1, 1, 1]))
        self.conv.bias.copy_(bias3 + bias1)
        del self.conv1, self.conv2


def _fold_bn(layer: ConvNormLayer) -> Tuple[Tensor, Tensor]:
    norm = layer.norm
    std = (norm.running_var + norm.eps).sqrt()
    scale = norm.weight / std
    return layer.conv.weight * scale.view(-1, 1, 1, 1), norm.bias - norm.running_mean * scale


class CSPRepLayer(nn.Module):
    def __init__(self, ch_in: int, ch_out: int, num_blocks: int, expansion: float, act: str):
        super().__init__()
        hidden = int(ch_out * expansion)
        self.conv1 = ConvNormLayer(ch_in, hidden, 1, 1, act=act)
        self.conv2 = ConvNormLayer(ch_in, hidden, 1, 1, act=act)
        self.bottlenecks = nn.Sequential(*[RepVggBlock(hidden, act) for _ in range(num_blocks)])
        self.conv3 = ConvNormLayer(hidden, ch_out, 1, 1, act=act) if hidden != ch_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))


class TransformerEncoderLayer(nn.Module):
    """Post-norm transformer layer; the position embedding goes into queries and keys only."""

    def __init__(self, dim: int, nhead: int, dim_feedforward: int, dropout: float, act: str):
        super().__init__()
        self.self_attn = SelfAttention(dim, nhead, dropout)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.act = activation(act)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        src = self.norm1(src + self.dropout(self.self_attn(src, pos)))
        return self.norm2(src + self.dropout(self.linear2(self.dropout(self.act(self.linear1(src))))))


class TransformerEncoder(nn.Module):
    def __init__(self, layer: TransformerEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        for layer in self.layers:
            src = layer(src, pos)
        return src


def sincos_position_embedding(height: int, width: int, dim: int, temperature: float,
                              device=None, dtype=torch.float32) -> Tensor:
    """The official 2D sin-cos embedding, [1, H*W, dim].

    Quirk kept on purpose: the official code builds the grid W-outer
    (``meshgrid(grid_w, grid_h, indexing='ij')``) while features are flattened
    H-outer.  On square maps that is the usual embedding; on non-square maps it
    is what official weights were trained with, so we reproduce it exactly
    (transformers 5.x uses the H-outer order and differs there).
    """
    if dim % 4:
        raise ValueError(f"the position embedding needs a width divisible by 4, got {dim}")
    grid_w, grid_h = torch.meshgrid(torch.arange(width, dtype=torch.float32, device=device),
                                    torch.arange(height, dtype=torch.float32, device=device), indexing="ij")
    pos_dim = dim // 4
    omega = 1.0 / temperature ** (torch.arange(pos_dim, dtype=torch.float32, device=device) / pos_dim)
    out_w = grid_w.flatten()[:, None] * omega[None]
    out_h = grid_h.flatten()[:, None] * omega[None]
    return torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)[None].to(dtype)


def _is_channels_last(x: Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class HybridEncoder(nn.Module):
    """Backbone levels [B, C_i, H_i, W_i] -> the same levels with ``hidden_dim`` channels."""

    def __init__(self, in_channels: List[int], arch: EncoderArch):
        super().__init__()
        dim = arch.hidden_dim
        self.hidden_dim = dim
        self.pe_temperature = arch.pe_temperature
        self.use_encoder_idx = list(arch.use_encoder_idx)
        self.input_proj = nn.ModuleList(
            nn.Sequential(OrderedDict([("conv", nn.Conv2d(ch, dim, 1, bias=False)), ("norm", nn.BatchNorm2d(dim))]))
            for ch in in_channels)
        layer = TransformerEncoderLayer(dim, arch.nhead, arch.dim_feedforward, arch.dropout, arch.enc_act)
        self.encoder = nn.ModuleList(TransformerEncoder(layer, arch.num_layers) for _ in self.use_encoder_idx)
        blocks = round(3 * arch.depth_mult)
        fusions = len(in_channels) - 1
        self.lateral_convs = nn.ModuleList(ConvNormLayer(dim, dim, 1, 1, act=arch.act) for _ in range(fusions))
        self.fpn_blocks = nn.ModuleList(CSPRepLayer(2 * dim, dim, blocks, arch.expansion, arch.act)
                                        for _ in range(fusions))
        self.downsample_convs = nn.ModuleList(ConvNormLayer(dim, dim, 3, 2, act=arch.act) for _ in range(fusions))
        self.pan_blocks = nn.ModuleList(CSPRepLayer(2 * dim, dim, blocks, arch.expansion, arch.act)
                                        for _ in range(fusions))
        self._pos_cache: Dict[tuple, Tensor] = {}
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj.conv.weight)

    def position_embedding(self, height: int, width: int, ref: Tensor) -> Tensor:
        key = (height, width, ref.device, ref.dtype)
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return sincos_position_embedding(height, width, self.hidden_dim, self.pe_temperature, ref.device, ref.dtype)
        if key not in self._pos_cache:
            self._pos_cache[key] = sincos_position_embedding(height, width, self.hidden_dim, self.pe_temperature,
                                                             ref.device, ref.dtype)
        return self._pos_cache[key]

    def forward(self, feats: List[Tensor]) -> List[Tensor]:
        proj = [p(f) for p, f in zip(self.input_proj, feats)]
        for encoder, idx in zip(self.encoder, self.use_encoder_idx):
            b, c, h, w = proj[idx].shape
            tokens = proj[idx].flatten(2).transpose(1, 2)
            tokens = encoder(tokens, self.position_embedding(h, w, tokens))
            # back in the layout the level came in (the view is already channels-last: free when it was)
            layout = torch.channels_last if _is_channels_last(proj[idx]) else torch.contiguous_format
            proj[idx] = tokens.transpose(1, 2).reshape(b, c, h, w).contiguous(memory_format=layout)

        # top-down: coarse to fine
        inner = [proj[-1]]
        for k, idx in enumerate(range(len(proj) - 1, 0, -1)):
            high = self.lateral_convs[k](inner[0])
            inner[0] = high
            up = F.interpolate(high, scale_factor=2.0, mode="nearest")
            inner.insert(0, self.fpn_blocks[k](torch.cat([up, proj[idx - 1]], dim=1)))
        # bottom-up: fine to coarse
        outs = [inner[0]]
        for k in range(len(proj) - 1):
            down = self.downsample_convs[k](outs[-1])
            outs.append(self.pan_blocks[k](torch.cat([down, inner[k + 1]], dim=1)))
        return outs
