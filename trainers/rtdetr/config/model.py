"""``model.*``: the RT-DETR architecture and loss settings (NVIDIA TAO's keys)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from .fields import INF, param, section

BACKBONES = ("resnet_18", "resnet_34", "resnet_50", "resnet_101")
# The names NVIDIA's schema accepts; config/support.py rejects the ones we do not run.
NVIDIA_BACKBONES = BACKBONES + (
    "convnext_tiny", "convnext_small", "convnext_base", "convnext_large", "convnext_xlarge",
    "fan_tiny", "fan_small", "fan_base", "fan_large",
    "efficientvit_b0", "efficientvit_b1", "efficientvit_b2", "efficientvit_b3",
    "efficientvit_l0", "efficientvit_l1", "efficientvit_l2", "efficientvit_l3")


@dataclass
class FrozenFMConfig:
    """TAO's frozen foundation-model branch; accepted in specs, only ``enabled: false`` is supported."""

    enabled: bool = param(False, description="Use a frozen foundation model (RADIO) beside the backbone. Not supported.")
    backbone: str = param("radio_v2-l", description="Name of the frozen foundation model.",
                          enum=["radio_v2-b", "radio_v2-l", "radio_v2-h"])
    checkpoint: str = param("", description="Path to the frozen foundation model checkpoint.")


@dataclass
class ModelConfig:
    """Configurable parameters to construct the model for a RT-DETR experiment."""

    pretrained_backbone_path: str = param(
        "", description="[Optional] Path to ImageNet backbone weights (a torchvision-style ResNet state dict or ours).")
    backbone: str = param("resnet_50", enum=list(NVIDIA_BACKBONES),
                          description="The backbone. NVIDIA's names are accepted; this trainer runs the "
                                      "ResNet-vd ones (resnet_18, resnet_34, resnet_50, resnet_101).")
    train_backbone: bool = param(True, description="When false, the backbone weights are frozen.")
    freeze_at: int = param(-1, minimum=-1, maximum=4,
                           description="Freeze the stem and the first N backbone stages (-1: nothing, 0: stem only).")
    freeze_norm: bool = param(False, description="Replace the backbone's BatchNorm by frozen BatchNorm (fixed statistics).")
    load_teacher_enc_dec: bool = param(False, description="Load the teacher's encoder and decoder weights (distill).")
    num_queries: int = param(300, minimum=1, maximum=INF, parent_param=True, automl_enabled=True,
                             description="The number of object queries.")
    num_select: int = param(300, minimum=1, maximum=1000, depends_on="model.num_queries", automl_enabled=True,
                            maximum_expr="min(model.num_queries, model.num_queries * dataset.num_classes - 1)",
                            description="The number of top-K predictions kept by the post-processor. "
                                        "Must be <= num_queries and < num_queries * num_classes.")
    num_feature_levels: int = param(3, minimum=1, maximum=4,
                                    description="The number of feature levels; must equal len(return_interm_indices).")
    return_interm_indices: List[int] = param([1, 2, 3], automl_enabled=False,
                                             description="The backbone stages (0..3) whose outputs feed the encoder.")
    feat_strides: List[int] = param([8, 16, 32], automl_enabled=False,
                                    description="The strides of the backbone outputs fed to the encoder.")
    feat_channels: List[int] = param([256, 256, 256], automl_enabled=False,
                                     description="The channels of the encoder outputs fed to the decoder.")
    use_encoder_idx: List[int] = param([2], automl_enabled=False,
                                       description="The feature levels that go through the AIFI transformer layer.")
    hidden_dim: int = param(256, minimum=8, automl_enabled=False, description="Dimension of the hidden units.")
    nheads: int = param(8, minimum=1, description="Number of attention heads.")
    dropout_ratio: float = param(0.0, minimum=0.0, maximum=1.0, description="The probability to drop hidden units.")
    enc_layers: int = param(1, minimum=1, automl_enabled=True, description="Number of AIFI encoder layers.")
    dim_feedforward: int = param(1024, minimum=1, description="Dimension of the feed-forward networks.")
    pe_temperature: int = param(10000, minimum=1, maximum=INF,
                                description="The temperature of the 2D sin-cos position embedding.")
    expansion: float = param(1.0, minimum=0.0, maximum=INF,
                             description="The hidden-channel expansion ratio of the CSPRep layers (0.5 for R18/R34).")
    depth_mult: float = param(1.0, minimum=0.0, maximum=INF,
                              description="Multiplier of the number of RepVGG blocks (3) in each CSPRep layer.")
    enc_act: str = param("gelu", enum=["gelu", "relu", "silu"], description="The activation of the AIFI layer.")
    act: str = param("silu", enum=["silu", "relu", "gelu"], description="The activation of the CCFM fusion.")
    dec_layers: int = param(6, minimum=1, automl_enabled=True, description="Number of decoder layers.")
    num_points: int = param(4, minimum=1, description="Sampling points per level and head in deformable attention.")
    dn_number: int = param(100, minimum=0, maximum=INF, description="The number of denoising queries (0: off).")
    label_noise_ratio: float = param(0.5, minimum=0.0, maximum=1.0, description="Label noise of the denoising queries.")
    box_noise_scale: float = param(1.0, minimum=0.0, description="Box noise scale of the denoising queries.")
    eval_idx: int = param(-1, minimum=-1, maximum=INF,
                          description="The decoder layer used at inference (-1: the last).")
    vfl_loss_coef: float = param(1.0, minimum=0.0, maximum=INF, description="Weight of the varifocal loss.")
    bbox_loss_coef: float = param(5.0, minimum=0.0, maximum=INF, description="Weight of the L1 box loss.")
    giou_loss_coef: float = param(2.0, minimum=0.0, maximum=INF, description="Weight of the GIoU loss.")
    class_cost: float = param(2.0, minimum=0.0, maximum=INF, description="Weight of the class cost in matching.")
    bbox_cost: float = param(5.0, minimum=0.0, maximum=INF, description="Weight of the L1 box cost in matching.")
    giou_cost: float = param(2.0, minimum=0.0, maximum=INF, description="Weight of the GIoU cost in matching.")
    alpha: float = param(0.75, math_cond="> 0.0", description="The alpha of the varifocal loss.")
    gamma: float = param(2.0, math_cond="> 0.0", description="The gamma of the varifocal loss.")
    matcher_alpha: float = param(0.25, math_cond="> 0.0", description="The alpha of the focal class cost.")
    matcher_gamma: float = param(2.0, math_cond="> 0.0", description="The gamma of the focal class cost.")
    clip_max_norm: float = param(0.1, description="Kept for TAO compatibility; train.clip_grad_norm is used.")
    aux_loss: bool = param(True, description="Use auxiliary losses on every decoder layer and the encoder top-k.")
    loss_types: List[str] = param(["vfl", "boxes"], automl_enabled=False, description="Losses used in training.")
    backbone_names: List[str] = param(["backbone.0"], automl_enabled=False,
                                      description="Prefix of the backbone parameters (lr_backbone applies to them).")
    linear_proj_names: List[str] = param(["reference_points", "sampling_offsets"], automl_enabled=False,
                                         description="Linear projection layer names.")
    distillation_loss_coef: float = param(1.0, minimum=0.0, description="Weight of the distillation loss (distill).")
    frozen_fm: FrozenFMConfig = section(FrozenFMConfig, description="The frozen foundation model branch.")
