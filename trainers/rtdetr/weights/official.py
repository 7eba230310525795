"""lyuwenyu/RT-DETR checkpoints (v1 ``rtdetr_pytorch`` and v2 ``rtdetrv2_pytorch``) -> ours.

Our module names are the official v2 names, so v2 weights load as they are;
v1 differs only in the ``Sequential`` indices of two projections.  Official
files carry no config: the architecture is read from the tensor shapes, and
what shapes cannot tell (attention heads, query count, eval_idx, activations)
comes from defaults the caller may override.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Tuple

from torch import Tensor

from trainers.errors import UserError

from ..model.architecture import Architecture, BackboneArch, DecoderArch, EncoderArch

_V1_RENAMES = [
    (re.compile(r"^((?:encoder|decoder)\.input_proj\.\d+)\.0\."), r"\1.conv."),
    (re.compile(r"^((?:encoder|decoder)\.input_proj\.\d+)\.1\."), r"\1.norm."),
    (re.compile(r"^decoder\.enc_output\.0\."), "decoder.enc_output.proj."),
    (re.compile(r"^decoder\.enc_output\.1\."), "decoder.enc_output.norm."),
]
_DROP = re.compile(r"(num_batches_tracked|num_points_scale)$|^decoder\.(anchors|valid_mask)$")

# What the shapes cannot tell, with the official values.
SHAPE_BLIND_DEFAULTS = {"nheads": 8, "num_queries": 300, "eval_idx": -1, "enc_act": "gelu", "act": "silu",
                        "use_encoder_idx": None, "dn_number": 100, "label_noise_ratio": 0.5, "box_noise_scale": 1.0}


def map_official_state_dict(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    mapped = {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if _DROP.search(key):
            continue
        for pattern, repl in _V1_RENAMES:
            key = pattern.sub(repl, key)
        mapped[key] = value
    return mapped


def _count(state: Mapping[str, Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    found = {int(m[1]) for k in state for m in [regex.match(k)] if m}
    return max(found) + 1 if found else 0


def architecture_from_official_state(state: Mapping[str, Tensor], overrides: Mapping[str, Any]
                                     ) -> Tuple[Architecture, Dict[str, Any]]:
    """Read the architecture off a (mapped) official state dict; ``overrides`` fill SHAPE_BLIND_DEFAULTS."""
    unknown = set(overrides) - set(SHAPE_BLIND_DEFAULTS)
    if unknown:
        raise UserError(f"import-weights: cannot set {sorted(unknown)} for official weights; "
                        f"settable: {', '.join(SHAPE_BLIND_DEFAULTS)}")
    opts = {**SHAPE_BLIND_DEFAULTS, **overrides}
    try:
        stem = [state[f"backbone.conv1.conv1_{i}.conv.weight"].shape[0] for i in (1, 2, 3)]
        num_stages = _count(state, r"^backbone\.res_layers\.(\d+)\.")
        depths = [_count(state, rf"^backbone\.res_layers\.{s}\.blocks\.(\d+)\.") for s in range(num_stages)]
        bottleneck = "backbone.res_layers.0.blocks.0.branch2c.conv.weight" in state
        widths = [state[f"backbone.res_layers.{s}.blocks.0.branch2a.conv.weight"].shape[0] for s in range(num_stages)]
        levels_in = _count(state, r"^encoder\.input_proj\.(\d+)\.")
        enc_dim = state["encoder.input_proj.0.conv.weight"].shape[0]
        encoders = _count(state, r"^encoder\.encoder\.(\d+)\.")
        enc_layers = _count(state, r"^encoder\.encoder\.0\.layers\.(\d+)\.")
        enc_ffn = state["encoder.encoder.0.layers.0.linear1.weight"].shape[0]
        csp_hidden = state["encoder.fpn_blocks.0.conv1.conv.weight"].shape[0]
        blocks = _count(state, r"^encoder\.fpn_blocks\.0\.bottlenecks\.(\d+)\.")
        dec_dim = state["decoder.input_proj.0.conv.weight"].shape[0]
        levels = _count(state, r"^decoder\.input_proj\.(\d+)\.")
        dec_layers = _count(state, r"^decoder\.dec_score_head\.(\d+)\.")
        num_classes = state["decoder.dec_score_head.0.weight"].shape[0]
        dec_ffn = state["decoder.decoder.layers.0.linear1.weight"].shape[0]
        offsets = state["decoder.decoder.layers.0.cross_attn.sampling_offsets.weight"].shape[0]
    except KeyError as missing:
        raise UserError(f"not an RT-DETR (PResNet) checkpoint: no tensor {missing}") from None
    heads = int(opts["nheads"])
    points, remainder = divmod(offsets, heads * levels * 2)
    if remainder:
        raise UserError(f"sampling_offsets has {offsets} outputs, not a multiple of nheads x levels x 2 "
                        f"({heads} x {levels} x 2): set nheads")
    use_encoder_idx = opts["use_encoder_idx"] or list(range(levels_in - encoders, levels_in))
    has_dn = "decoder.denoising_class_embed.weight" in state
    arch = Architecture(
        num_classes=num_classes,
        backbone=BackboneArch(block="bottleneck" if bottleneck else "basic", depths=depths, stem_channels=stem,
                              stage_widths=widths, return_idx=list(range(num_stages - levels_in, num_stages))),
        encoder=EncoderArch(hidden_dim=enc_dim, use_encoder_idx=use_encoder_idx, num_layers=enc_layers, nhead=heads,
                            dim_feedforward=enc_ffn, enc_act=opts["enc_act"], expansion=csp_hidden / enc_dim,
                            depth_mult=blocks / 3, act=opts["act"]),
        decoder=DecoderArch(hidden_dim=dec_dim, num_levels=levels, num_points=points, num_layers=dec_layers,
                            nhead=heads, dim_feedforward=dec_ffn, num_queries=int(opts["num_queries"]),
                            num_denoising=int(opts["dn_number"]) if has_dn else 0,
                            label_noise_ratio=float(opts["label_noise_ratio"]),
                            box_noise_scale=float(opts["box_noise_scale"]), eval_idx=int(opts["eval_idx"])),
    )
    settings = {"num_queries": arch.decoder.num_queries, "num_select": arch.decoder.num_queries,
                "hidden_dim": dec_dim, "nheads": heads, "dec_layers": dec_layers, "enc_layers": enc_layers,
                "dn_number": arch.decoder.num_denoising, "eval_idx": arch.decoder.eval_idx}
    return arch, settings
