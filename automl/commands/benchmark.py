"""``tao-automl benchmark``: per-image latency (p50, p90, p99) and throughput of a .pth, .onnx or .engine.

    tao-automl benchmark --skill rtdetr -e spec.yaml benchmark.checkpoint=PATH [benchmark.batch_sizes=[1,4]]

Input size: the exported file's, or dataset.augmentation.eval_spatial_size for
a .pth.  ``benchmark.warmup`` untimed runs, then ``benchmark.iterations``
timed ones per batch size.  Writes ``benchmark.results_dir`` (default
``<results_dir>/benchmark``)/benchmark.json and prints a table.
"""
from __future__ import annotations

import argparse

from automl.commands import add_spec_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark", help="latency (p50/p90/p99) and throughput of a .pth, .onnx or .engine",
        description="Time benchmark.checkpoint (.pth with PyTorch, .onnx with ONNX Runtime, .engine with "
                    "TensorRT) at each of benchmark.batch_sizes after benchmark.warmup untimed runs.")
    add_spec_arguments(parser, "e.g. benchmark.checkpoint=model.onnx benchmark.batch_sizes=[1,4]")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from automl.skills import find_skill
    from automl.spec import load_spec
    from trainers.rtdetr.benchmark import run_benchmark

    cfg = load_spec(find_skill(args.skill), args.spec, args.overrides, "benchmark")
    run_benchmark(cfg)
    return 0
