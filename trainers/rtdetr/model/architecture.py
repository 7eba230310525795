"""The resolved architecture of one RT-DETR model.

``model.*`` in a spec says what a user wants (``backbone: resnet_50``,
``hidden_dim``...).  :class:`Architecture` is what the modules are built from:
every width, depth and count spelled out.  A checkpoint stores it, so a model
loads with nothing but its file, including models whose sizes no named
backbone has (a tiny imported test model, for example).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping

from trainers.errors import UserError

# name -> (block type, blocks per stage); stage widths and the stem are the
# official PResNet-vd ones.
RESNETS = {
    "resnet_18": ("basic", [2, 2, 2, 2]),
    "resnet_34": ("basic", [3, 4, 6, 3]),
    "resnet_50": ("bottleneck", [3, 4, 6, 3]),
    "resnet_101": ("bottleneck", [3, 4, 23, 3]),
}
OFFICIAL_STEM = [32, 32, 64]
OFFICIAL_STAGE_WIDTHS = [64, 128, 256, 512]
ACTIVATIONS = ("relu", "gelu", "silu")


def canonical_backbone(name: str) -> str:
    """``resnet50``, ``ResNet-50`` and ``resnet_50`` all mean ``resnet_50``."""
    key = name.strip().lower().replace("-", "_")
    if key.startswith("resnet") and not key.startswith("resnet_"):
        key = "resnet_" + key[len("resnet"):]
    if key not in RESNETS:
        raise UserError(f"model.backbone: {name!r} is not supported; choose one of {', '.join(RESNETS)}")
    return key


@dataclass
class BackboneArch:
    block: str  # "basic" (R18/R34) or "bottleneck" (R50/R101)
    depths: List[int]
    stem_channels: List[int] = field(default_factory=lambda: list(OFFICIAL_STEM))
    stage_widths: List[int] = field(default_factory=lambda: list(OFFICIAL_STAGE_WIDTHS))
    return_idx: List[int] = field(default_factory=lambda: [1, 2, 3])
    freeze_at: int = -1
    freeze_norm: bool = False

    @property
    def out_channels(self) -> List[int]:
        expansion = 4 if self.block == "bottleneck" else 1
        return [self.stage_widths[i] * expansion for i in self.return_idx]

    @property
    def out_strides(self) -> List[int]:
        return [4 * 2 ** i for i in self.return_idx]


@dataclass
class EncoderArch:
    hidden_dim: int = 256
    use_encoder_idx: List[int] = field(default_factory=lambda: [2])
    num_layers: int = 1
    nhead: int = 8
    dim_feedforward: int = 1024
    dropout: float = 0.0
    enc_act: str = "gelu"
    pe_temperature: float = 10000.0
    expansion: float = 1.0
    depth_mult: float = 1.0
    act: str = "silu"


@dataclass
class DecoderArch:
    hidden_dim: int = 256
    num_levels: int = 3
    num_points: int = 4
    num_layers: int = 6
    nhead: int = 8
    dim_feedforward: int = 1024
    dropout: float = 0.0
    num_queries: int = 300
    num_denoising: int = 100
    label_noise_ratio: float = 0.5
    box_noise_scale: float = 1.0
    eval_idx: int = -1
    aux_loss: bool = True


@dataclass
class Architecture:
    num_classes: int
    backbone: BackboneArch
    encoder: EncoderArch = field(default_factory=EncoderArch)
    decoder: DecoderArch = field(default_factory=DecoderArch)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Architecture":
        try:
            return cls(num_classes=int(data["num_classes"]),
                       backbone=BackboneArch(**data["backbone"]),
                       encoder=EncoderArch(**data["encoder"]),
                       decoder=DecoderArch(**data["decoder"]))
        except (KeyError, TypeError) as error:
            raise UserError(f"checkpoint architecture is incomplete or unknown ({error})") from None


def architecture_from_config(model_cfg: Any, num_classes: int) -> Architecture:
    """Resolve ``model.*`` settings (a ModelConfig or any object with its attribute names).

    Raises UserError naming the key for values we cannot build.
    """
    name = canonical_backbone(model_cfg.backbone)
    block, depths = RESNETS[name]
    return_idx = list(model_cfg.return_interm_indices)
    levels_in = len(return_idx)
    _require(return_idx == sorted(set(return_idx)) and all(0 <= i <= 3 for i in return_idx),
             "model.return_interm_indices", f"{return_idx} must be increasing stage indices in 0..3")
    _require(all(b - a == 1 for a, b in zip(return_idx, return_idx[1:])), "model.return_interm_indices",
             f"{return_idx} must be consecutive stages (the fusion doubles the resolution between levels)")
    expected_strides = [4 * 2 ** i for i in return_idx]
    _require(list(model_cfg.feat_strides) == expected_strides, "model.feat_strides",
             f"{list(model_cfg.feat_strides)} does not match return_interm_indices {return_idx} "
             f"(expected {expected_strides})")
    feat_channels = list(model_cfg.feat_channels)
    _require(len(feat_channels) == levels_in and len(set(feat_channels)) == 1, "model.feat_channels",
             f"{feat_channels} must hold one equal width per returned level ({levels_in})")
    _require(model_cfg.num_feature_levels >= levels_in, "model.num_feature_levels",
             f"{model_cfg.num_feature_levels} is less than len(return_interm_indices) = {levels_in}")
    _require(all(0 <= i < levels_in for i in model_cfg.use_encoder_idx), "model.use_encoder_idx",
             f"{list(model_cfg.use_encoder_idx)} must index the {levels_in} returned levels")
    encoder_dim = feat_channels[0]
    for key, dim in (("model.feat_channels", encoder_dim), ("model.hidden_dim", model_cfg.hidden_dim)):
        _require(dim % model_cfg.nheads == 0, key, f"{dim} is not divisible by model.nheads = {model_cfg.nheads}")
    dec_layers = model_cfg.dec_layers
    _require(-dec_layers <= model_cfg.eval_idx < dec_layers, "model.eval_idx",
             f"{model_cfg.eval_idx} is outside the {dec_layers} decoder layers")
    _require(model_cfg.num_select <= model_cfg.num_queries * num_classes, "model.num_select",
             f"{model_cfg.num_select} exceeds num_queries x num_classes = {model_cfg.num_queries * num_classes}")
    for key in ("enc_act", "act"):
        value = getattr(model_cfg, key)
        _require(value in ACTIVATIONS, f"model.{key}", f"{value!r} is not one of {', '.join(ACTIVATIONS)}")
    frozen_fm = getattr(model_cfg, "frozen_fm", None)
    _require(not getattr(frozen_fm, "enabled", False), "model.frozen_fm.enabled",
             "the frozen foundation-model branch (RADIO) is not supported; set it to false")
    unknown_losses = set(model_cfg.loss_types) - {"vfl", "boxes"}
    _require(not unknown_losses, "model.loss_types", f"unsupported losses {sorted(unknown_losses)}; use vfl, boxes")
    return Architecture(
        num_classes=num_classes,
        backbone=BackboneArch(block=block, depths=list(depths), return_idx=return_idx,
                              freeze_at=model_cfg.freeze_at, freeze_norm=model_cfg.freeze_norm),
        encoder=EncoderArch(hidden_dim=encoder_dim, use_encoder_idx=list(model_cfg.use_encoder_idx),
                            num_layers=model_cfg.enc_layers, nhead=model_cfg.nheads,
                            dim_feedforward=model_cfg.dim_feedforward, dropout=model_cfg.dropout_ratio,
                            enc_act=model_cfg.enc_act, pe_temperature=float(model_cfg.pe_temperature),
                            expansion=float(model_cfg.expansion), depth_mult=float(model_cfg.depth_mult),
                            act=model_cfg.act),
        decoder=DecoderArch(hidden_dim=model_cfg.hidden_dim, num_levels=model_cfg.num_feature_levels,
                            num_points=model_cfg.num_points, num_layers=dec_layers, nhead=model_cfg.nheads,
                            dim_feedforward=model_cfg.dim_feedforward, dropout=model_cfg.dropout_ratio,
                            num_queries=model_cfg.num_queries, num_denoising=model_cfg.dn_number,
                            label_noise_ratio=model_cfg.label_noise_ratio, box_noise_scale=model_cfg.box_noise_scale,
                            eval_idx=model_cfg.eval_idx, aux_loss=model_cfg.aux_loss),
    )


def _require(condition: bool, key: str, why: str) -> None:
    if not condition:
        raise UserError(f"{key}: {why}")
