"""The student's training loss plus the distillation terms, as one criterion the plain trainer can call.

``criterion(outputs, targets)`` is all the trainer gives a loss, so the images
come from a pre-hook on the student; the teacher runs on them (no grad, eval
mode) and its features and query selection come from hooks too.  Added terms
(each already multiplied by ``model.distillation_loss_coef`` and its weight):

- ``loss_distill_class``, ``loss_distill_bbox``, ``loss_distill_giou``,
  ``loss_distill_enc``: output distillation (ours; TAO has none).  When both
  models have the same memory positions (same strides, levels and input size)
  it is aligned: the student decodes once more from the teacher's query
  selection and every query is compared with the same query of the teacher
  (:mod:`.aligned`; why: DETR queries are unordered).  Otherwise the student's
  outputs are matched one-to-one to the teacher's queries scored at least
  ``distill.teacher_score_threshold`` (no ``enc`` term then);
- ``loss_distill_<binding>``: one per ``distill.bindings`` entry (TAO's feature
  distillation; criterion IOU, L1, L2 or KL).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch
from torch import Tensor, nn

from trainers.errors import UserError

from .aligned import DecoderTap, aligned_distillation, decode_from
from .bindings import ALIASES, FeatureTaps, InputTap, QuerySelectionTap, check_module_names
from .losses import feature_loss, iou_feature_loss, output_distillation, query_quality

CRITERIA = ("IOU", "L1", "L2", "KL")


@dataclass
class Binding:
    student: str
    teacher: str
    criterion: str
    weight: float
    loss_name: str


def resolve_bindings(bindings_cfg: Sequence, student: nn.Module, teacher: nn.Module) -> List[Binding]:
    """Check ``distill.bindings`` against both models (one line per mistake) and name each loss term."""
    resolved: List[Binding] = []
    for i, entry in enumerate(bindings_cfg):
        get = (lambda k: entry.get(k)) if isinstance(entry, dict) else (lambda k: getattr(entry, k))
        key = f"distill.bindings.{i}"
        criterion = str(get("criterion"))
        if criterion not in CRITERIA:
            raise UserError(f"{key}.criterion: {criterion!r} is not supported; choose one of {', '.join(CRITERIA)}")
        s_name, t_name = str(get("student_module_name")), str(get("teacher_module_name"))
        if criterion == "IOU" and (s_name not in ("srcs", "dsrcs") or s_name != t_name):
            raise UserError(f"{key}: criterion IOU compares srcs with srcs or dsrcs with dsrcs (TAO's rule), "
                            f"got student {s_name!r} and teacher {t_name!r}")
        check_module_names(student, [s_name], f"{key}.student_module_name")
        check_module_names(teacher, [t_name], f"{key}.teacher_module_name")
        name = "loss_distill_" + (s_name if s_name in ALIASES else s_name.replace(".", "_"))
        if any(b.loss_name == name for b in resolved):
            name = f"{name}_{i}"
        resolved.append(Binding(s_name, t_name, criterion, float(get("weight")), name))
    return resolved


class DistillationCriterion(nn.Module):
    """``base`` (the student's RT-DETR loss) plus output and feature distillation from ``teacher``."""

    def __init__(self, base: nn.Module, student: nn.Module, teacher: nn.Module, bindings: Sequence[Binding], *,
                 coef: float, score_threshold: float, class_weight: float, bbox_weight: float, giou_weight: float):
        super().__init__()
        self.base, self.teacher = base, teacher
        self.bindings = list(bindings)
        self.coef, self.score_threshold = float(coef), float(score_threshold)
        self.weights = {"class": class_weight, "bbox": bbox_weight, "giou": giou_weight, "enc": class_weight}
        self.inputs = InputTap(student)
        self.student_taps = FeatureTaps(student, [b.student for b in self.bindings], only_with_grad=True)
        self.teacher_taps = FeatureTaps(teacher, [b.teacher for b in self.bindings], only_with_grad=False)
        self.selection = QuerySelectionTap(teacher)
        self.student_decoder = DecoderTap(student, only_with_grad=True)
        self.teacher_decoder = DecoderTap(teacher, only_with_grad=False)
        self.student = [student]   # a list: not a submodule (its parameters belong to the trainer's model)
        self.teacher.eval()

    def train(self, mode: bool = True) -> "DistillationCriterion":
        super().train(mode)
        self.teacher.eval()   # the trainer calls criterion.train(); the teacher's BatchNorm must not move
        return self

    def remove_hooks(self) -> None:
        for tap in (self.inputs, self.student_taps, self.teacher_taps, self.selection, self.student_decoder,
                    self.teacher_decoder):
            tap.remove()

    def forward(self, outputs: Dict, targets: List[Dict[str, Tensor]]) -> Dict[str, Tensor]:
        losses = dict(self.base(outputs, targets))
        images = self.inputs.images
        if images is None:
            raise RuntimeError("distillation: the student's forward was not seen (call the model before the loss)")
        with torch.no_grad():
            teacher_out = self.teacher(images.float())
        for name, value in self._output_terms(outputs, teacher_out).items():
            losses[f"loss_distill_{name}"] = value * (self.coef * self.weights[name])
        for binding in self.bindings:
            student_maps = [m.float() for m in self.student_taps[binding.student]]
            teacher_maps = [m.float() for m in self.teacher_taps[binding.teacher]]
            _check_shapes(binding, student_maps, teacher_maps)
            if binding.criterion == "IOU":
                quality = query_quality(self.selection.scores, self.selection.boxes, [t["boxes"] for t in targets])
                loss = iou_feature_loss(student_maps, teacher_maps, self.selection.queries.float(), quality)
            else:
                loss = feature_loss(binding.criterion, student_maps, teacher_maps)
            losses[binding.loss_name] = loss * (self.coef * binding.weight)
        self.student_taps.clear()
        self.teacher_taps.clear()
        self.student_decoder.clear()
        self.teacher_decoder.clear()
        self.inputs.images = None
        return losses

    def _output_terms(self, outputs: Dict, teacher_out: Dict) -> Dict[str, Tensor]:
        """Aligned distillation (the student decodes from the teacher's selection) when both memories have the
        same positions; else matching the student's outputs to the teacher's confident ones."""
        s_tap, t_tap = self.student_decoder, self.teacher_decoder
        if s_tap.tokens.shape[1] == t_tap.tokens.shape[1]:
            boxes, logits = decode_from(self.student[0], s_tap, t_tap.topk(), t_tap.start_boxes)
            return aligned_distillation(logits, boxes, teacher_out["pred_logits"], teacher_out["pred_boxes"],
                                        s_tap.enc_logits, t_tap.enc_logits)
        return output_distillation(outputs["pred_logits"], outputs["pred_boxes"], teacher_out["pred_logits"],
                                   teacher_out["pred_boxes"], self.score_threshold)


def _check_shapes(binding: Binding, student_maps: Sequence[Tensor], teacher_maps: Sequence[Tensor]) -> None:
    s_shapes = [tuple(m.shape[1:]) for m in student_maps]
    t_shapes = [tuple(m.shape[1:]) for m in teacher_maps]
    if s_shapes != t_shapes:
        raise UserError(f"distill.bindings ({binding.student} -> {binding.teacher}, {binding.criterion}): the "
                        f"student's maps {s_shapes} do not match the teacher's {t_shapes}; bind places of the same "
                        f"shape (srcs and dsrcs need the same model.hidden_dim and levels as distill.teacher)")
