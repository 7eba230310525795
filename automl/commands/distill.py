"""``tao-automl distill``: a teacher RT-DETR trains the spec's student (``model.*``).

    tao-automl distill --skill rtdetr -e spec.yaml distill.pretrained_teacher_model_path=teacher.pth [key=value ...]

Results go to ``distill.results_dir`` (default ``results_dir/distill/``), with
the files of plain training (checkpoints, status.json, metrics.jsonl).
"""
from __future__ import annotations

import argparse

from automl.commands import add_spec_arguments, finished_line


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "distill", help="train the spec's model with a teacher (knowledge distillation)",
        description="Train model.* as plain training does, plus output distillation towards the teacher's "
                    "confident predictions and feature distillation at distill.bindings, weighted by "
                    "model.distillation_loss_coef.")
    add_spec_arguments(parser, "spec overrides, e.g. distill.pretrained_teacher_model_path=teacher.pth")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from automl.skills import find_skill
    from automl.spec import load_spec

    cfg = load_spec(find_skill(args.skill), args.spec, args.overrides, "distill")
    from trainers.rtdetr.distill import run_distill
    from trainers.rtdetr.engine.trainer import launch

    launch(cfg)  # re-executes under torchrun for multi-GPU / multi-node runs
    print(finished_line("distillation", run_distill(cfg)))
    return 0
