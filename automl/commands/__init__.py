"""One module per ``tao-automl`` command, each with ``register(subparsers)``."""
from __future__ import annotations

import argparse


def add_spec_arguments(parser: argparse.ArgumentParser, overrides_help: str = "spec overrides, e.g. train.num_epochs=5"
                       ) -> None:
    """The arguments every spec-driven command shares: --skill, -e SPEC and KEY=VALUE overrides."""
    parser.add_argument("--skill", required=True, help="skill name (rtdetr) or skill folder")
    parser.add_argument("-e", "--experiment-spec", dest="spec", required=True, help="the spec YAML file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=overrides_help)


def finished_line(what: str, summary: dict) -> str:
    """The last line of a training-like command (train, distill): best val_mAP50 and where the files are."""
    best = summary.get("val_mAP50")
    best_text = f"{best:.4f} (epoch {summary.get('best_epoch')})" if best is not None else "n/a (not validated)"
    return (f"{what} finished: best val_mAP50 {best_text}; checkpoints, status.json and metrics.jsonl in "
            f"{summary['train_dir']}")
