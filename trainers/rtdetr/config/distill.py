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

    student_module_name: str = param("srcs", description="The student module (srcs or dsrcs for IOU).")
    teacher_module_name: str = param("srcs", description="The teacher module (srcs or dsrcs for IOU).")
    criterion: str = param("IOU", description="The distillation criterion (IOU).")
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
    results_dir: str = param("", description="Where distill writes its results.")
