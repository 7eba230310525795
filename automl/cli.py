"""The ``tao-automl`` command line.

Each command lives in its own module under ``automl/commands`` and exposes
``register(subparsers)``, which adds its parser and sets ``handler``.  Bad input
anywhere below raises :class:`trainers.errors.UserError`; it is printed as one
line and the process exits with code 2.
"""
from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
import threading
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


def run() -> None:
    """The ``tao-automl`` process: :func:`main`, then :func:`exit_now`."""
    exit_now(main())


def exit_now(code: int) -> None:
    """End the process with ``code`` without tearing its modules down one by one.

    After a sweep or a training run the interpreter's normal exit spends over a second on module teardown
    (torch, MLflow, Ray, ONNX: 1.35 s measured against 0.13 s here), all of it after the work is done.
    What an exit must still do is done: the output is flushed and the exit handlers run (Ray's, logging's,
    multiprocessing's, temporary folders').  A thread still at work gets the normal exit, which waits for it.
    """
    if any(thread.is_alive() and not thread.daemon for thread in threading.enumerate()
           if thread is not threading.main_thread()):
        sys.exit(code)
    _flush()
    atexit._run_exitfuncs()   # what the normal exit runs first (CPython; no public name)
    _flush()
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe (``| head``) or stream: nothing more can reach it
            pass


if __name__ == "__main__":
    run()
