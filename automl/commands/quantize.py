"""``tao-automl quantize``: post-training int8 of a checkpoint for CPU deployment (ONNX Runtime, static).

    tao-automl quantize --skill rtdetr -e spec.yaml quantize.model_path=model_best.pth [key=value ...]

Writes ``quantize.results_dir`` (default ``results_dir/quantize/``): model_fp32.onnx, model_int8.onnx and
quantize.json (val_mAP50 and batch-1 latency before and after).
"""
from __future__ import annotations

import argparse

from automl.commands import add_spec_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize", help="int8 ONNX model for the CPU (ONNX Runtime static quantization)",
        description="Export quantize.model_path to ONNX, quantize it to int8 with calibration images from "
                    "dataset.quant_calibration_data_sources, and report val_mAP50 and batch-1 latency before and "
                    "after.")
    add_spec_arguments(parser, "spec overrides, e.g. quantize.model_path=runs/x/train/model_best.pth")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from automl.skills import find_skill
    from automl.spec import load_spec

    cfg = load_spec(find_skill(args.skill), args.spec, args.overrides, "quantize")
    from trainers.rtdetr.quantize import run_quantize

    result = run_quantize(cfg)
    print(f"quantize finished: {result.int8_onnx} ({result.speedup:.2f}x faster than FP32 ONNX Runtime at batch 1, "
          f"val_mAP50 drop {result.map50_drop:+.4f}); numbers in {result.results_file}")
    return 0
