"""``tao-automl train``: one plain training run of the skill's trainer (``automl_policy`` off).

    tao-automl train --skill rtdetr -e spec.yaml [--automl-policy off|on|auto] [key=value ...]

Results go to ``results_dir/train/`` (checkpoints, status.json, metrics.jsonl).
With ``--automl-policy on`` (or ``auto``) an AutoML-enabled skill runs a sweep
instead, exactly as ``tao-automl sweep`` with the spec's ``automl`` settings.
"""
from __future__ import annotations

import argparse

import sys

from automl.commands import add_spec_arguments, finished_line


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train once with the skill's trainer",
        description="Train an RT-DETR detector as the spec says. With --automl-policy on|auto the run is "
                    "routed to a hyperparameter sweep when the skill supports one.")
    parser.add_argument("--automl-policy", default="off", choices=["on", "auto", "off"],
                        help="off (default): plain training; on/auto: a sweep (the spec's automl settings) when "
                             "the skill is AutoML-enabled")
    add_spec_arguments(parser, "spec overrides, e.g. train.num_epochs=5")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from automl.policy import decide_route
    from automl.skills import find_skill
    from automl.spec import load_spec

    skill = find_skill(args.skill)
    route = decide_route(skill, args.automl_policy)
    if route.notice:
        print(f"notice: {route.notice}", file=sys.stderr)
    if route.kind == "sweep":
        from automl.commands.sweep import sweep

        return sweep(args.skill, args.spec, args.overrides, {})
    cfg = load_spec(skill, args.spec, args.overrides, "train")
    from trainers.rtdetr.engine.trainer import launch, train

    launch(cfg)  # re-executes under torchrun for multi-GPU / multi-node runs
    print(finished_line("training", train(cfg)))
    return 0
