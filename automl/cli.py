"""The ``tao-automl`` command line.

Each command lives in its own module under ``automl/commands`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler``.  Bad input
anywhere below raises :class:`trainers.errors.UserError`; it is printed as one
line and the process exits with code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from trainers.errors import UserError

# Module names under automl.commands, in the order `--help` lists them.
COMMANDS = [
    "train",
    "sweep",
    "evaluate",
    "inference",
    "import_weights",
    "dataset",
    "space",
    "validate",
    "export",
    "benchmark",
    "distill",
    "quantize",
    "gen_trt_engine",
    "ui",
    "report",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line and exit code 2 like every other bad input (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def one_line(message: object) -> str:
    """A message that may span lines (e.g. tarfile's per-method list) as one line."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="tao-automl",
        description="Train, sweep and deploy RT-DETR detectors from TAO skill specs.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(f"automl.commands.{name}").register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"tao-automl {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tao-automl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
