"""``distill``: train the spec's student (``model.*``) with a teacher, through the plain trainer.

Output goes to ``distill.results_dir``, by default ``<results_dir>/distill/``
(TAO's per-action folder: its distill template has its own
``distill.results_dir``), with exactly the files of plain training:
status.json, metrics.jsonl (with the ``loss_distill_*`` terms),
model_epoch_NNN.pth, model_latest.pth, model_best.pth.  The checkpoints hold
the student only, so evaluate, export and quantize take them as they are.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from trainers.rtdetr.engine import distributed
from trainers.rtdetr.engine.reproducibility import seed_everything
from trainers.rtdetr.engine.trainer import Parts, build_parts, train

from .criterion import DistillationCriterion, resolve_bindings
from .teacher import copy_encoder_decoder, load_teacher, teacher_path


def distill_dir(cfg) -> Path:
    return Path(cfg.distill.results_dir) if cfg.distill.results_dir else Path(cfg.results_dir or ".") / "distill"


def for_distillation(cfg):
    """A copy of ``cfg`` whose training writes to the distill folder."""
    cfg = copy.deepcopy(cfg)
    cfg.train.results_dir = str(distill_dir(cfg))
    return cfg


def build_distill_parts(cfg, log: Callable[[str], None] = print) -> Parts:
    """The student's parts as plain training builds them, with the loss wrapped by :class:`DistillationCriterion`."""
    teacher_path(cfg.distill)   # a wrong path fails before the data is read
    # Seeded as train() seeds before it builds the parts itself: the student starts from the weights plain
    # training with the same train.seed starts from (unseeded, two runs of one spec ended 0.079 and 0.180).
    seed_everything(int(cfg.train.seed), distributed.read_env().rank)
    parts = build_parts(cfg, log)
    student = parts.model
    quiet = log if distributed.is_main_process() else (lambda _line: None)
    teacher = load_teacher(cfg.distill, student.num_classes, parts.category_ids, log=quiet)
    if cfg.model.load_teacher_enc_dec:
        copied = copy_encoder_decoder(teacher, student)
        quiet(f"distill: model.load_teacher_enc_dec copied {copied} encoder/decoder tensors into the student")
    bindings = resolve_bindings(cfg.distill.bindings, student, teacher)
    model_cfg = cfg.model
    parts.criterion = DistillationCriterion(
        parts.criterion, student, teacher, bindings, coef=float(model_cfg.distillation_loss_coef),
        score_threshold=float(cfg.distill.teacher_score_threshold),
        class_weight=float(cfg.distill.output_class_weight),
        bbox_weight=float(cfg.distill.output_box_weight) * float(model_cfg.bbox_loss_coef),
        giou_weight=float(cfg.distill.output_box_weight) * float(model_cfg.giou_loss_coef))
    return parts


def run_distill(cfg, log: Callable[[str], None] = print,
                on_epoch_end: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Distil ``distill.pretrained_teacher_model_path`` into the spec's model; returns the training summary."""
    cfg = for_distillation(cfg)
    parts = build_distill_parts(cfg, log)
    try:
        return train(cfg, parts=parts, on_epoch_end=on_epoch_end, log=log)
    finally:
        parts.criterion.remove_hooks()


def distill_from(teacher_path: str, cfg, log: Callable[[str], None] = print,
                 on_epoch_end: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """For a sweep's winner: distil the checkpoint ``teacher_path`` into ``cfg``'s student.

    Returns the training summary (``train_dir`` = the distill folder,
    ``best_checkpoint``, ``val_mAP50``, ``best_epoch``...).
    """
    cfg = copy.deepcopy(cfg)
    cfg.distill.pretrained_teacher_model_path = str(teacher_path)
    return run_distill(cfg, log=log, on_epoch_end=on_epoch_end)
