"""The distillation teacher: loaded once, frozen, always in eval mode.

A tao-automl checkpoint carries its architecture (``trainers.rtdetr.load_model``
reads it); a bare state dict (or an official checkpoint) is built from the
spec's ``distill.teacher`` keys instead, which is what NVIDIA's template has
them for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from torch import nn

from trainers.errors import UserError
from trainers.rtdetr.checkpoint import load_checkpoint, model_state_from
from trainers.rtdetr.load import model_from_checkpoint
from trainers.rtdetr.model import RTDETR, build_model

KEY = "distill.pretrained_teacher_model_path"


def teacher_path(distill_cfg) -> str:
    """The teacher's checkpoint path, checked before anything expensive starts."""
    path = str(distill_cfg.pretrained_teacher_model_path or "")
    if not path or path == "???":
        raise UserError(f"{KEY}: not set; give the teacher's checkpoint, e.g. {KEY}=runs/teacher/train/model_best.pth")
    if not Path(path).is_file():
        raise UserError(f"{KEY}: {path}: file not found; train a teacher first (tao-automl train) or fix the path")
    return path


def load_teacher(distill_cfg, num_classes: int, category_ids: Optional[Sequence[int]] = None,
                 log: Callable[[str], None] = print) -> RTDETR:
    """The teacher of ``distill_cfg`` with ``num_classes`` outputs, frozen and in eval mode (on the CPU)."""
    path = teacher_path(distill_cfg)
    payload = load_checkpoint(path)
    if "architecture" in payload:
        teacher = model_from_checkpoint(payload, path)
    else:
        teacher = build_model(distill_cfg.teacher, num_classes)
        result = teacher.load_state_dict(model_state_from(payload, path), strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise UserError(f"{KEY}: {path}: the weights do not fit distill.teacher (missing {missing[:3]}, "
                            f"unexpected {result.unexpected_keys[:3]}); set distill.teacher.* to the teacher's "
                            f"architecture")
    if teacher.num_classes != num_classes:
        raise UserError(f"{KEY}: {path}: the teacher predicts {teacher.num_classes} classes, the student "
                        f"{num_classes}; distil a teacher trained on the same categories")
    stored = list(payload.get("category_ids") or [])
    if category_ids and stored and list(category_ids) != stored[:len(category_ids)]:
        raise UserError(f"{KEY}: {path}: the teacher's category ids {stored[:5]} differ from the dataset's "
                        f"{list(category_ids)[:5]}; distil a teacher trained on the same categories")
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    log(f"distill: teacher {path} ({sum(p.numel() for p in teacher.parameters()) / 1e6:.1f}M parameters)")
    return teacher.eval()


def copy_encoder_decoder(teacher: nn.Module, student: nn.Module) -> int:
    """``model.load_teacher_enc_dec``: copy the teacher's encoder and decoder tensors of the same shape into the
    student (TAO skips the backbone, whose shapes differ between ResNet depths).  Returns how many were copied."""
    student_state = student.state_dict()
    copied = {k: v for k, v in teacher.state_dict().items()
              if not k.startswith("backbone.") and k in student_state and student_state[k].shape == v.shape}
    student.load_state_dict(copied, strict=False)
    return len(copied)
