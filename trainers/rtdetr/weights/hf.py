"""transformers ``RTDetrForObjectDetection`` / ``RTDetrV2ForObjectDetection`` -> our names.

Key names of transformers 5.x (``aifi``, ``o_proj``, ``mlp.fc1``) and of the
4.x checkpoints on the hub (``encoder.encoder.N``, ``out_proj``, ``fc1``) are
both accepted.  Separate q/k/v projections are packed into ``in_proj``.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

import torch
from torch import Tensor

from trainers.errors import UserError

from ..model.architecture import Architecture, BackboneArch, DecoderArch, EncoderArch

# (pattern, replacement) applied in order to every key; the first match wins.
_RULES: List[Tuple[str, str]] = [
    (r"^model\.backbone\.model\.embedder\.embedder\.(\d)\.convolution\.", lambda m: f"backbone.conv1.conv1_{int(m[1]) + 1}.conv."),
    (r"^model\.backbone\.model\.embedder\.embedder\.(\d)\.normalization\.", lambda m: f"backbone.conv1.conv1_{int(m[1]) + 1}.norm."),
    (r"^model\.backbone\.model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d)\.(convolution|normalization)\.",
     lambda m: f"backbone.res_layers.{m[1]}.blocks.{m[2]}.branch2{'abc'[int(m[3])]}.{_CN[m[4]]}."),
    (r"^model\.backbone\.model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.1\.(convolution|normalization)\.",
     lambda m: f"backbone.res_layers.{m[1]}.blocks.{m[2]}.short.conv.{_CN[m[3]]}."),
    (r"^model\.backbone\.model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.(convolution|normalization)\.",
     lambda m: f"backbone.res_layers.{m[1]}.blocks.{m[2]}.short.{_CN[m[3]]}."),
    (r"^model\.encoder_input_proj\.(\d+)\.([01])\.", lambda m: f"encoder.input_proj.{m[1]}.{'conv' if m[2] == '0' else 'norm'}."),
    (r"^model\.decoder_input_proj\.(\d+)\.([01])\.", lambda m: f"decoder.input_proj.{m[1]}.{'conv' if m[2] == '0' else 'norm'}."),
    (r"^model\.encoder\.(?:aifi|encoder)\.(\d+)\.layers\.(\d+)\.(.*)$",
     lambda m: f"encoder.encoder.{m[1]}.layers.{m[2]}.{_layer_part(m[3], _ENCODER_PARTS)}"),
    (r"^model\.encoder\.((?:lateral_convs|fpn_blocks|pan_blocks|downsample_convs)\..*)$", lambda m: f"encoder.{m[1]}"),
    (r"^model\.decoder\.layers\.(\d+)\.(.*)$",
     lambda m: f"decoder.decoder.layers.{m[1]}.{_layer_part(m[2], _DECODER_PARTS)}"),
    (r"^model\.decoder\.class_embed\.(\d+)\.", lambda m: f"decoder.dec_score_head.{m[1]}."),
    (r"^model\.decoder\.bbox_embed\.(\d+)\.", lambda m: f"decoder.dec_bbox_head.{m[1]}."),
    (r"^model\.decoder\.query_pos_head\.", lambda m: "decoder.query_pos_head."),
    (r"^model\.denoising_class_embed\.", lambda m: "decoder.denoising_class_embed."),
    (r"^model\.enc_output\.([01])\.", lambda m: f"decoder.enc_output.{'proj' if m[1] == '0' else 'norm'}."),
    (r"^model\.(enc_score_head|enc_bbox_head)\.", lambda m: f"decoder.{m[1]}."),
]
_CN = {"convolution": "conv", "normalization": "norm"}
_ENCODER_PARTS = {"self_attn.o_proj": "self_attn.out_proj", "self_attn.out_proj": "self_attn.out_proj",
                  "mlp.fc1": "linear1", "fc1": "linear1", "mlp.fc2": "linear2", "fc2": "linear2",
                  "self_attn_layer_norm": "norm1", "final_layer_norm": "norm2"}
_DECODER_PARTS = {"self_attn.o_proj": "self_attn.out_proj", "self_attn.out_proj": "self_attn.out_proj",
                  "mlp.fc1": "linear1", "fc1": "linear1", "mlp.fc2": "linear2", "fc2": "linear2",
                  "self_attn_layer_norm": "norm1", "encoder_attn_layer_norm": "norm2", "final_layer_norm": "norm3",
                  "encoder_attn": "cross_attn"}
# Buffers and tied duplicates that carry nothing we need.
_DROP = re.compile(r"(num_batches_tracked|n_points_scale|num_points_scale|\.anchors$|\.valid_mask$)$"
                   r"|^(class_embed|bbox_embed)\.")


def _layer_part(rest: str, parts: Dict[str, str]) -> str:
    for old in sorted(parts, key=len, reverse=True):
        if rest.startswith(old + "."):
            return parts[old] + rest[len(old):]
    return rest


def map_hf_state_dict(state: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], List[str]]:
    """Rename a transformers state dict; returns (our state dict, keys that matched no rule)."""
    mapped: Dict[str, Tensor] = {}
    unmatched: List[str] = []
    qkv: Dict[str, Dict[str, Tensor]] = {}
    for key, value in state.items():
        if _DROP.search(key):
            continue
        for pattern, repl in _RULES:
            new, count = re.subn(pattern, repl, key)
            if count:
                break
        else:
            unmatched.append(key)
            continue
        split = re.match(r"^(.*\.self_attn)\.([qkv])_proj\.(weight|bias)$", new)
        if split:
            qkv.setdefault(f"{split[1]}.in_proj_{split[3]}", {})[split[2]] = value
        else:
            mapped[new] = value
    for key, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise UserError(f"attention projection {key} is missing one of q/k/v in the transformers weights")
        mapped[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return mapped, unmatched


def architecture_from_hf_config(config: Dict[str, Any]) -> Tuple[Architecture, Dict[str, Any], List[str]]:
    """(architecture, model.* settings it implies, class names) from a transformers config.json dict."""
    bb = config.get("backbone_config") or {}
    if config.get("use_timm_backbone"):
        raise UserError("config.json: timm backbones are not supported (use_timm_backbone: true)")
    layer_type = bb.get("layer_type", "bottleneck")
    hidden_sizes = list(bb.get("hidden_sizes", [256, 512, 1024, 2048]))
    depths = list(bb.get("depths", [3, 4, 6, 3]))
    embedding = int(bb.get("embedding_size", 64))
    out_indices = list(bb.get("out_indices", [2, 3, 4]))
    if bb.get("downsample_in_bottleneck") or bb.get("downsample_in_first_stage"):
        raise UserError("config.json: backbone_config downsample options other than the ResNet-vd layout are not supported")
    expansion = 4 if layer_type == "bottleneck" else 1
    unsupported = {"normalize_before": True, "learn_initial_query": True}
    for key, bad in unsupported.items():
        if config.get(key) == bad:
            raise UserError(f"config.json: {key}: {bad} is not supported")
    for key in ("decoder_activation_function",):
        if config.get(key, "relu") != "relu":
            raise UserError(f"config.json: {key}: {config[key]!r} is not supported (relu only)")
    if config.get("decoder_method", "default") != "default":
        raise UserError(f"config.json: decoder_method: {config['decoder_method']!r} is not supported")
    enc_dim = int(config.get("encoder_hidden_dim", 256))
    dec_in = list(config.get("decoder_in_channels", [enc_dim] * 3))
    if any(c != enc_dim for c in dec_in):
        raise UserError(f"config.json: decoder_in_channels {dec_in} must equal encoder_hidden_dim {enc_dim}")
    id2label = config.get("id2label") or {}
    num_classes = int(config.get("num_labels", len(id2label) or 80))
    class_names = [str(id2label.get(str(i), id2label.get(i, f"class_{i}"))) for i in range(num_classes)]
    points = config.get("decoder_n_points", 4)
    if isinstance(points, list):
        if len(set(points)) != 1:
            raise UserError(f"config.json: per-level decoder_n_points {points} are not supported")
        points = points[0]
    arch = Architecture(
        num_classes=num_classes,
        backbone=BackboneArch(
            block="bottleneck" if layer_type == "bottleneck" else "basic", depths=depths,
            stem_channels=[embedding // 2, embedding // 2, embedding],
            stage_widths=[h // expansion for h in hidden_sizes], return_idx=[i - 1 for i in out_indices],
            freeze_at=-1, freeze_norm=bool(config.get("freeze_backbone_batch_norms", True))),
        encoder=EncoderArch(
            hidden_dim=enc_dim, use_encoder_idx=list(config.get("encode_proj_layers", [2])),
            num_layers=int(config.get("encoder_layers", 1)), nhead=int(config.get("encoder_attention_heads", 8)),
            dim_feedforward=int(config.get("encoder_ffn_dim", 1024)), dropout=float(config.get("dropout", 0.0)),
            enc_act=config.get("encoder_activation_function", "gelu"),
            pe_temperature=float(config.get("positional_encoding_temperature", 10000)),
            expansion=float(config.get("hidden_expansion", 1.0)), depth_mult=1.0,
            act=config.get("activation_function", "silu")),
        decoder=DecoderArch(
            hidden_dim=int(config.get("d_model", 256)), num_levels=int(config.get("num_feature_levels", 3)),
            num_points=int(points), num_layers=int(config.get("decoder_layers", 6)),
            nhead=int(config.get("decoder_attention_heads", 8)), dim_feedforward=int(config.get("decoder_ffn_dim", 1024)),
            dropout=float(config.get("dropout", 0.0)), num_queries=int(config.get("num_queries", 300)),
            num_denoising=int(config.get("num_denoising", 100)),
            label_noise_ratio=float(config.get("label_noise_ratio", 0.5)),
            box_noise_scale=float(config.get("box_noise_scale", 1.0)), eval_idx=-1,
            aux_loss=bool(config.get("auxiliary_loss", True))),
    )
    settings = {
        "num_queries": arch.decoder.num_queries, "num_select": arch.decoder.num_queries,
        "hidden_dim": arch.decoder.hidden_dim, "nheads": arch.decoder.nhead, "dec_layers": arch.decoder.num_layers,
        "enc_layers": arch.encoder.num_layers, "dn_number": arch.decoder.num_denoising,
        "vfl_loss_coef": float(config.get("weight_loss_vfl", 1.0)),
        "bbox_loss_coef": float(config.get("weight_loss_bbox", 5.0)),
        "giou_loss_coef": float(config.get("weight_loss_giou", 2.0)),
        "class_cost": float(config.get("matcher_class_cost", 2.0)),
        "bbox_cost": float(config.get("matcher_bbox_cost", 5.0)),
        "giou_cost": float(config.get("matcher_giou_cost", 2.0)),
        "alpha": float(config.get("focal_loss_alpha", 0.75)), "gamma": float(config.get("focal_loss_gamma", 2.0)),
        "matcher_alpha": float(config.get("matcher_alpha", 0.25)),
        "matcher_gamma": float(config.get("matcher_gamma", 2.0)),
    }
    return arch, settings, class_names
