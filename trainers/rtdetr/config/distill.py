"""``distill.*``: knowledge distillation from a teacher RT-DETR (NVIDIA TAO's keys)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from .actions import MISSING
from .fields import param, section
from .model import ModelConfig


@dataclass
class DistillationBindingConfig:
    """A pair of modules whose outputs the distillation loss compares."""

    student_module_name: str = param("srcs", description="The student module: srcs (encoder input projections), "
                                     "dsrcs (encoder outputs), bb_feats (backbone levels) or a module name.")
    teacher_module_name: str = param("srcs", description="The teacher module (same choices as the student's).")
    criterion: str = param("IOU", enum=["IOU", "L1", "L2", "KL"],
                           description="IOU (query-guided masked feature MSE; srcs or dsrcs only), L1, L2 or KL.")
    weight: float = param(1.0, minimum=0.0, description="The weight of this binding's loss.")


@dataclass
class DistillConfig:
    """Distil a teacher into the student described by ``model``."""

    teacher: ModelConfig = section(ModelConfig, searchable=False,
                                   description="The teacher's architecture (same keys as model).")
    pretrained_teacher_model_path: str = param(MISSING, description="The teacher's checkpoint.")
    bindings: List[DistillationBindingConfig] = param(
        [DistillationBindingConfig()], automl_enabled=False,
        description="The module pairs compared by the distillation loss.")
    results_dir: str = param("", description="Where distill writes its results (default results_dir/distill).")
    # Output distillation is ours (TAO distils features only); model.distillation_loss_coef scales it too.
    teacher_score_threshold: float = param(
        0.3, minimum=0.0, maximum=1.0,
        description="When student and teacher memories differ (strides, levels, input size): teacher queries "
                    "scored at least this are matched and distilled (ours).")
    output_class_weight: float = param(1.0, minimum=0.0,
                                       description="Weight of the class-score distillation (ours).")
    output_box_weight: float = param(1.0, minimum=0.0,
                                     description="Weight of the box (L1 + GIoU) distillation (ours).")
