"""The RT-DETR model, its loss and its post-processor.

``build_model(model_cfg, num_classes)`` builds from ``model.*`` settings;
``build_criterion(model_cfg, num_classes)`` the matching loss.
"""
from __future__ import annotations

from typing import Any

from .architecture import Architecture, architecture_from_config, canonical_backbone
from .criterion import RTDETRCriterion
from .matcher import HungarianMatcher
from .postprocessor import PostProcessor
from .rtdetr import RTDETR, SIZE_MULTIPLE

__all__ = ["Architecture", "HungarianMatcher", "PostProcessor", "RTDETR", "RTDETRCriterion", "SIZE_MULTIPLE",
           "architecture_from_config", "build_criterion", "build_model", "canonical_backbone"]


def build_model(model_cfg: Any, num_classes: int) -> RTDETR:
    """``model_cfg``: a ModelConfig (or anything with its attribute names)."""
    return RTDETR(architecture_from_config(model_cfg, num_classes))


def build_criterion(model_cfg: Any, num_classes: int) -> RTDETRCriterion:
    matcher = HungarianMatcher(cost_class=model_cfg.class_cost, cost_bbox=model_cfg.bbox_cost,
                               cost_giou=model_cfg.giou_cost, alpha=model_cfg.matcher_alpha,
                               gamma=model_cfg.matcher_gamma)
    return RTDETRCriterion(num_classes, matcher, vfl_weight=model_cfg.vfl_loss_coef,
                           bbox_weight=model_cfg.bbox_loss_coef, giou_weight=model_cfg.giou_loss_coef,
                           alpha=model_cfg.alpha, gamma=model_cfg.gamma, aux_loss=model_cfg.aux_loss)
