"""``tao-automl evaluate``: COCO metrics of a checkpoint on ``dataset.test_data_sources``.

    tao-automl evaluate --skill rtdetr -e spec.yaml evaluate.checkpoint=PATH [key=value ...]

Writes ``results_dir/evaluate/results.json`` and prints a table.
"""
from __future__ import annotations

import argparse

from automl.commands import add_spec_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="COCO metrics of a checkpoint on the test set",
        description="AP, AP50, AP75, small/medium/large and per-class AP50 (pycocotools, 100 detections per "
                    "image) of evaluate.checkpoint on dataset.test_data_sources.")
    add_spec_arguments(parser, "e.g. evaluate.checkpoint=model.pth")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from automl.skills import find_skill
    from automl.spec import load_spec
    from trainers.rtdetr.engine.evaluation import evaluate_checkpoint

    cfg = load_spec(find_skill(args.skill), args.spec, args.overrides, "evaluate")
    evaluate_checkpoint(cfg)
    return 0
