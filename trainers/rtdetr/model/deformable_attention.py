"""Multi-scale deformable attention in pure PyTorch (``grid_sample``), no custom kernel.

Each query looks at ``num_points`` sampling locations per level and head around
its reference box; the locations are learned offsets scaled by the box size.
``grid_sample`` runs on every device and exports to ONNX (opset >= 16).
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def deformable_attention_core(value: Tensor, spatial_shapes: List[Tuple[int, int]],
                              sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Sample and mix values.

    value [B, S, heads, head_dim] with S = sum(H_l * W_l);
    sampling_locations [B, Q, heads, levels, points, 2] in 0..1 (x, y);
    attention_weights [B, Q, heads, levels, points] -> output [B, Q, heads * head_dim].
    """
    batch, _, heads, head_dim = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    per_level = value.split([h * w for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for level, (h, w) in enumerate(spatial_shapes):
        # [B, H*W, heads, d] -> [B*heads, d, H, W]
        value_l = per_level[level].flatten(2).transpose(1, 2).reshape(batch * heads, head_dim, h, w)
        # [B, Q, heads, P, 2] -> [B*heads, Q, P, 2]
        grid_l = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False))
    # [B*heads, d, Q, levels*P] weighted by [B*heads, 1, Q, levels*P]
    weights = attention_weights.transpose(1, 2).reshape(batch * heads, 1, queries, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return out.view(batch, heads * head_dim, queries).transpose(1, 2)


class MSDeformableAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, num_levels: int, num_points: int, offset_scale: float = 0.5):
        super().__init__()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.num_levels, self.num_points = num_levels, num_points
        self.offset_scale = offset_scale
        total = num_heads * num_levels * num_points
        self.sampling_offsets = nn.Linear(embed_dim, total * 2)
        self.attention_weights = nn.Linear(embed_dim, total)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # offsets start on a radial pattern: head h looks in direction 2*pi*h/heads, point p at distance p+1
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True).values).view(self.num_heads, 1, 1, 2)
        grid = grid.repeat(1, self.num_levels, self.num_points, 1)
        grid *= torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(self, query: Tensor, reference_boxes: Tensor, value: Tensor,
                spatial_shapes: List[Tuple[int, int]]) -> Tensor:
        """query [B,Q,D], reference_boxes [B,Q,4] (cx,cy,w,h in 0..1), value [B,S,D] -> [B,Q,D]."""
        batch, queries, _ = query.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        value = self.value_proj(value).view(batch, value.shape[1], heads, self.embed_dim // heads)
        offsets = self.sampling_offsets(query).view(batch, queries, heads, levels, points, 2)
        weights = self.attention_weights(query).view(batch, queries, heads, levels * points)
        weights = weights.softmax(-1).view(batch, queries, heads, levels, points)
        ref = reference_boxes[:, :, None, None, None, :]
        # offsets are in units of half the box size, divided among the points
        locations = ref[..., :2] + offsets * (self.offset_scale / points) * ref[..., 2:]
        return self.output_proj(deformable_attention_core(value, spatial_shapes, locations, weights))
