"""INT8 (ONNX Runtime static) vs FP32 ONNX Runtime on a trained checkpoint: val_mAP50 and batch-1 latency.

    python benchmarks/bench_quantize.py --checkpoint runs/x/train/model_best.pth --spec spec.yaml \
        [--threads 1] [--variant name=key:value,... ...]

The spec gives the validation and calibration data (calibration defaults to the
validation images).  Each variant is a set of quantize.backend_kwargs (and
skip_names); the script prints one row per variant with the ratios
(speed-up = FP32 latency / INT8 latency, drop = FP32 val_mAP50 - INT8 val_mAP50)
against the goal (>= 1.5x, <= 0.02).
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_VARIANTS = [
    "qoperator=quant_format:QOperator,per_channel:true",
    "qdq_per_channel=quant_format:QDQ,per_channel:true",
    "qdq_per_tensor=quant_format:QDQ,per_channel:false",
    "qdq_reduce_range=quant_format:QDQ,per_channel:true,reduce_range:true",
    "qdq_no_preopt=quant_format:QDQ,per_channel:true,optimize:false",
    "qdq_float_heads=quant_format:QDQ,per_channel:true,skip:decoder.*score_head*|decoder.*bbox_head*",
    "qdq_backbone_only=quant_format:QDQ,per_channel:true,skip:encoder*|decoder*",
]


def parse_variant(text: str):
    name, _, body = text.partition("=")
    kwargs, skip = {}, []
    for item in filter(None, body.split(",")):
        key, _, value = item.partition(":")
        if key == "skip":
            skip = value.split("|")
            continue
        kwargs[key] = {"true": True, "false": False}.get(value.lower(), value)
    return name, kwargs, skip


def interleaved_latency(result, iterations: int, threads: int, rounds: int = 3):
    """Best batch-1 p50 (ms) of FP32 and INT8 over ``rounds`` alternating measurements."""
    from trainers.rtdetr.benchmark import measure_latency
    from trainers.rtdetr.runtime import load_predictor

    best = {"fp32": float("inf"), "int8": float("inf")}
    with load_predictor(result.fp32_onnx, num_threads=threads) as fp32, \
            load_predictor(result.int8_onnx, num_threads=threads) as int8:
        for _ in range(rounds):
            for key, predictor in (("fp32", fp32), ("int8", int8)):
                ms = measure_latency(predictor, 1, tuple(predictor.info.input_size), warmup=5,
                                     iterations=iterations)["p50_ms"]
                best[key] = min(best[key], ms)
    return best["fp32"], best["int8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--variant", action="append", help="name=key:value,... (default: a standard set)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from automl.spec import load_spec
    from trainers.rtdetr.quantize.run import quantize_model

    cfg = load_spec("rtdetr", args.spec, [], "quantize")
    if not cfg.dataset.quant_calibration_data_sources.image_dir:
        cfg.dataset.quant_calibration_data_sources.image_dir = cfg.dataset.val_data_sources.image_dir
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for text in args.variant or DEFAULT_VARIANTS:
            name, kwargs, skip = parse_variant(text)
            variant = copy.deepcopy(cfg)
            variant.quantize.results_dir = str(Path(scratch) / name)
            variant.quantize.backend_kwargs = {"calibration_images": args.calibration_images,
                                               "latency_iterations": args.iterations, **kwargs}
            variant.quantize.skip_names = skip
            result = quantize_model(args.checkpoint, variant, log=lambda *_: None, threads=args.threads)
            rows.append((name, result))
            # shared, busy cores: time FP32 and INT8 alternately and keep each one's best median
            fp32_ms, int8_ms = interleaved_latency(result, args.iterations, args.threads, rounds=args.rounds)
            result.fp32["latency_ms"], result.int8["latency_ms"] = fp32_ms, int8_ms
            print(f"{name:20s} fp32 {result.fp32['latency_ms']:7.2f} ms  int8 {result.int8['latency_ms']:7.2f} ms  "
                  f"speed-up {result.speedup:4.2f}x  val_mAP50 {result.fp32['val_mAP50']:.4f} -> "
                  f"{result.int8['val_mAP50']:.4f} (drop {result.map50_drop:+.4f})  "
                  f"goal {'met' if result.speedup >= 1.5 and result.map50_drop <= 0.02 else 'NOT met'}", flush=True)


if __name__ == "__main__":
    main()
