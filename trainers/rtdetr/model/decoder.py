"""RT-DETR decoder: IoU-aware query selection, then iterative box refinement.

Follows the official ``rtdetrv2_decoder.py`` (names ``input_proj``,
``decoder.layers``, ``enc_output.proj/norm``, ``enc_score_head``,
``enc_bbox_head``, ``dec_score_head``, ``dec_bbox_head``, ``query_pos_head``,
``denoising_class_embed``).  In training, each layer's box is also emitted
through the previous layer's *undetached* box ("look forward twice"), the
gradient path of the official v2 decoder that transformers drops.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainers.errors import UserError

from .architecture import DecoderArch
from .attention import SelfAttention
from .deformable_attention import MSDeformableAttention
from .denoising import build_denoising_group
from .box_ops import inverse_sigmoid
from .layers import MLP

FP16_MAX = 65504.0


class TransformerDecoderLayer(nn.Module):
    def __init__(self, dim: int, nhead: int, dim_feedforward: int, dropout: float, levels: int, points: int):
        super().__init__()
        self.self_attn = SelfAttention(dim, nhead, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MSDeformableAttention(dim, nhead, levels, points)
        self.norm2 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, target: Tensor, ref_boxes: Tensor, memory: Tensor, spatial_shapes: List[Tuple[int, int]],
                attn_mask: Optional[Tensor], query_pos: Tensor) -> Tensor:
        target = self.norm1(target + self.dropout(self.self_attn(target, query_pos, attn_mask)))
        cross = self.cross_attn(target + query_pos, ref_boxes, memory, spatial_shapes)
        target = self.norm2(target + self.dropout(cross))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(target), inplace=True)))
        target = target + self.dropout(ffn)
        if target.dtype == torch.float16:
            # the FFN residual overflows fp16 on long trainings (official issue #464)
            target = target.clamp(-FP16_MAX, FP16_MAX)
        return self.norm3(target)


class TransformerDecoder(nn.Module):
    def __init__(self, layer_args: tuple, num_layers: int, eval_idx: int):
        super().__init__()
        self.layers = nn.ModuleList(TransformerDecoderLayer(*layer_args) for _ in range(num_layers))
        self.eval_idx = eval_idx if eval_idx >= 0 else num_layers + eval_idx

    def forward(self, target: Tensor, ref_unact: Tensor, memory: Tensor, spatial_shapes: List[Tuple[int, int]],
                bbox_heads: nn.ModuleList, score_heads: nn.ModuleList, query_pos_head: MLP,
                attn_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """-> boxes [L,B,Q,4] and logits [L,B,Q,C]; L = all layers in training, 1 (eval_idx) in eval."""
        boxes, logits = [], []
        ref_detached = ref_unact.sigmoid()
        ref = ref_detached
        for i, layer in enumerate(self.layers):
            target = layer(target, ref_detached, memory, spatial_shapes, attn_mask, query_pos_head(ref_detached))
            delta = bbox_heads[i](target)
            inter = (delta + inverse_sigmoid(ref_detached)).sigmoid()
            if self.training:
                logits.append(score_heads[i](target))
                boxes.append(inter if i == 0 else (delta + inverse_sigmoid(ref)).sigmoid())
            elif i == self.eval_idx:
                logits.append(score_heads[i](target))
                boxes.append(inter)
                break
            ref = inter
            ref_detached = inter.detach()
        return torch.stack(boxes), torch.stack(logits)


class RTDETRDecoder(nn.Module):
    """Encoder levels [B, C, H_l, W_l] -> predictions.

    Output dict: ``pred_logits`` [B,Q,C] and ``pred_boxes`` [B,Q,4] (cx, cy, w, h
    normalised).  In training also ``dec_logits``/``dec_boxes`` [L,B,Q,*] for
    every layer, ``enc_logits``/``enc_boxes`` [B,Q,*] for the selected encoder
    tokens, and with denoising ``dn_logits``/``dn_boxes`` [L,B,N_dn,*] and
    ``dn_meta``.
    """

    def __init__(self, num_classes: int, feat_channels: List[int], arch: DecoderArch):
        super().__init__()
        dim = arch.hidden_dim
        self.num_classes, self.hidden_dim = num_classes, dim
        self.num_queries, self.num_levels = arch.num_queries, arch.num_levels
        self.num_denoising = arch.num_denoising
        self.label_noise_ratio, self.box_noise_scale = arch.label_noise_ratio, arch.box_noise_scale
        self.input_proj = nn.ModuleList()
        for ch in feat_channels:
            self.input_proj.append(nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(ch, dim, 1, bias=False)), ("norm", nn.BatchNorm2d(dim))])))
        ch = feat_channels[-1]
        for _ in range(arch.num_levels - len(feat_channels)):  # extra coarser levels
            self.input_proj.append(nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(ch, dim, 3, 2, padding=1, bias=False)), ("norm", nn.BatchNorm2d(dim))])))
            ch = dim
        self.decoder = TransformerDecoder((dim, arch.nhead, arch.dim_feedforward, arch.dropout, arch.num_levels,
                                           arch.num_points), arch.num_layers, arch.eval_idx)
        if arch.num_denoising > 0:
            self.denoising_class_embed = nn.Embedding(num_classes + 1, dim, padding_idx=num_classes)
        self.query_pos_head = MLP(4, 2 * dim, dim, 2)
        self.enc_output = nn.Sequential(OrderedDict([("proj", nn.Linear(dim, dim)), ("norm", nn.LayerNorm(dim))]))
        self.enc_score_head = nn.Linear(dim, num_classes)
        self.enc_bbox_head = MLP(dim, dim, 4, 3)
        self.dec_score_head = nn.ModuleList(nn.Linear(dim, num_classes) for _ in range(arch.num_layers))
        self.dec_bbox_head = nn.ModuleList(MLP(dim, dim, 4, 3) for _ in range(arch.num_layers))
        self._anchor_cache: Dict[tuple, Tuple[Tensor, Tensor]] = {}
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        prior_bias = -math.log((1 - 0.01) / 0.01)  # initial class probability 0.01
        nn.init.constant_(self.enc_score_head.bias, prior_bias)
        for head in [self.enc_bbox_head, *self.dec_bbox_head]:
            nn.init.constant_(head.layers[-1].weight, 0.0)
            nn.init.constant_(head.layers[-1].bias, 0.0)
        for head in self.dec_score_head:
            nn.init.constant_(head.bias, prior_bias)
        nn.init.xavier_uniform_(self.enc_output.proj.weight)
        for layer in self.query_pos_head.layers:
            nn.init.xavier_uniform_(layer.weight)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj.conv.weight)

    def _flatten_levels(self, feats: List[Tensor]) -> Tuple[Tensor, List[Tuple[int, int]]]:
        levels = [proj(f) for proj, f in zip(self.input_proj, feats)]
        for i in range(len(feats), self.num_levels):
            levels.append(self.input_proj[i](feats[-1] if i == len(feats) else levels[-1]))
        shapes = [(int(f.shape[2]), int(f.shape[3])) for f in levels]
        return torch.cat([f.flatten(2).transpose(1, 2) for f in levels], dim=1), shapes

    def anchors(self, shapes: List[Tuple[int, int]], ref: Tensor, grid_size: float = 0.05,
                eps: float = 1e-2) -> Tuple[Tensor, Tensor]:
        """Box logits of one anchor per feature cell [1,S,4], and which anchors are valid [1,S,1]."""
        key = (tuple(shapes), ref.device, ref.dtype)
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if not tracing and key in self._anchor_cache:
            return self._anchor_cache[key]
        per_level = []
        for lvl, (h, w) in enumerate(shapes):
            gy, gx = torch.meshgrid(torch.arange(h, device=ref.device), torch.arange(w, device=ref.device),
                                    indexing="ij")
            xy = (torch.stack([gx, gy], -1).to(torch.float32) + 0.5) / torch.tensor([w, h], device=ref.device)
            wh = torch.full_like(xy, grid_size * 2.0 ** lvl)
            per_level.append(torch.cat([xy, wh], -1).reshape(1, h * w, 4))
        anchors = torch.cat(per_level, 1)
        valid = ((anchors > eps) & (anchors < 1 - eps)).all(-1, keepdim=True)
        # invalid anchors get a huge finite logit (not inf: inf breaks some runtimes' arithmetic)
        anchors = torch.log(anchors / (1 - anchors)).to(ref.dtype)
        anchors = torch.where(valid, anchors, torch.tensor(torch.finfo(ref.dtype).max, dtype=ref.dtype,
                                                           device=ref.device))
        if not tracing:
            self._anchor_cache[key] = (anchors, valid)
        return anchors, valid

    def _check_enough_positions(self, shapes) -> None:
        """Query selection takes the top num_queries of the encoder's positions (sum of h*w over the levels):
        a small input can have fewer, which torch.topk would only report as an index error."""
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return
        positions = sum(h * w for h, w in shapes)
        if positions < self.num_queries:
            levels = ", ".join(f"{h}x{w}" for h, w in shapes)
            raise UserError(f"model.num_queries: {self.num_queries} queries need as many encoder positions, but this "
                            f"input gives {positions} (feature maps {levels}); use a larger input size or at most "
                            f"{positions} queries")

    def forward(self, feats: List[Tensor], targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict:
        memory, shapes = self._flatten_levels(feats)
        self._check_enough_positions(shapes)
        dn = None
        if self.training and self.num_denoising > 0 and targets is not None:
            dn = build_denoising_group(targets, self.num_classes, self.num_queries, self.denoising_class_embed,
                                       self.num_denoising, self.label_noise_ratio, self.box_noise_scale)

        anchors, valid = self.anchors(shapes, memory)
        output_memory = self.enc_output(valid.to(memory.dtype) * memory)
        enc_logits_all = self.enc_score_head(output_memory)
        topk = torch.topk(enc_logits_all.max(-1).values, self.num_queries, dim=1).indices
        gather = lambda t: t.gather(1, topk.unsqueeze(-1).expand(-1, -1, t.shape[-1]))  # noqa: E731
        topk_memory = gather(output_memory)
        # the box head runs on the selected tokens only: same values, a fraction of the work
        ref_unact = self.enc_bbox_head(topk_memory) + gather(anchors.expand(memory.shape[0], -1, -1))
        content = topk_memory.detach()
        init_ref = ref_unact.detach()
        attn_mask = None
        if dn is not None:
            content = torch.cat([dn.queries, content], 1)
            init_ref = torch.cat([dn.boxes_unact, init_ref], 1)
            attn_mask = torch.zeros(dn.attn_mask.shape, dtype=memory.dtype, device=memory.device)
            attn_mask.masked_fill_(dn.attn_mask, float("-inf"))

        boxes, logits = self.decoder(content, init_ref, memory, shapes, self.dec_bbox_head, self.dec_score_head,
                                     self.query_pos_head, attn_mask)
        if not self.training:
            return {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        out: Dict = {}
        if dn is not None:
            dn_boxes, boxes = torch.split(boxes, dn.split, dim=2)
            dn_logits, logits = torch.split(logits, dn.split, dim=2)
            out.update(dn_boxes=dn_boxes, dn_logits=dn_logits, dn_meta=dn.meta())
        out.update(pred_logits=logits[-1], pred_boxes=boxes[-1], dec_logits=logits, dec_boxes=boxes,
                   enc_logits=gather(enc_logits_all), enc_boxes=ref_unact.sigmoid())
        return out
