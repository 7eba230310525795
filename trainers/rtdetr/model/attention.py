"""Multi-head self-attention with nn.MultiheadAttention's parameter names.

Keys (``in_proj_weight``, ``in_proj_bias``, ``out_proj``) match the official
checkpoints, which use ``nn.MultiheadAttention(batch_first=True)``.  Written
here because RT-DETR adds the position embedding to queries and keys only:
with one packed projection we project ``x + pos`` for q/k and ``x`` for v in
two matmuls, then call ``scaled_dot_product_attention``, which picks the
fastest kernel for the device and exports to ONNX.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SelfAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor, pos: Optional[Tensor] = None, attn_mask: Optional[Tensor] = None) -> Tensor:
        """x [B,N,D], pos broadcastable to x, attn_mask additive float [N,N] or None -> [B,N,D]."""
        batch, length, dim = x.shape
        d = self.embed_dim
        qk_input = x if pos is None else x + pos
        qk = F.linear(qk_input, self.in_proj_weight[: 2 * d], self.in_proj_bias[: 2 * d])
        v = F.linear(x, self.in_proj_weight[2 * d:], self.in_proj_bias[2 * d:])
        heads, head_dim = self.num_heads, d // self.num_heads
        q, k = qk.view(batch, length, 2, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        v = v.view(batch, length, heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))
