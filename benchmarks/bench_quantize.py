"""INT8 (ONNX Runtime static) vs FP32 ONNX Runtime on a trained checkpoint: val_mAP50 and batch-1 latency.

    python benchmarks/bench_quantize.py --checkpoint runs/x/train/model_best.pth --spec spec.yaml \
        [--threads 1] [--iterations 200] [--all-variants] [--variant name=key:value,... ...]

The spec gives the validation and calibration data (calibration defaults to the
validation images).  Each variant is a set of quantize.backend_kwargs (and
skip_names); the script prints one row per variant with the ratios
(speed-up = FP32 latency / INT8 latency, drop = FP32 val_mAP50 - INT8 val_mAP50)
against the goal (>= 1.5x, <= 0.02).

Latency: FP32 and INT8 sessions with the same thread count, timed call by
call in alternation on the same input (see interleaved_latency), medians.  The
mAP50 of both comes from quantize_model on the spec's validation set.  Run
time: about 1 min a variant for the tiny preset at 64-96 px (two by default).
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
]
MORE_VARIANTS = [
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


def interleaved_latency(result, iterations: int, threads: int, warmup: int = 10):
    """Batch-1 median latency (ms) of FP32 and INT8, timed call by call in alternation.

    Both sessions get the same thread count and the same input; each timed
    step runs one FP32 and one INT8 call, in ABBA order (which one goes first
    flips every step, so neither always inherits the other's warm caches), so
    load from other processes hits both alike.  Returns the medians and the
    median of the per-step ratios FP32/INT8 (the speed-up least disturbed by
    load that changes during the run).
    """
    import time

    import numpy as np

    from trainers.rtdetr.runtime import load_predictor, predict_any_batch

    with load_predictor(result.fp32_onnx, num_threads=threads) as fp32, \
            load_predictor(result.int8_onnx, num_threads=threads) as int8:
        height, width = tuple(fp32.info.input_size)
        images = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
        for _ in range(warmup):
            predict_any_batch(fp32, images)
            predict_any_batch(int8, images)
        seconds = {"fp32": np.empty(iterations), "int8": np.empty(iterations)}
        for step in range(iterations):
            order = (("fp32", fp32), ("int8", int8)) if step % 2 == 0 else (("int8", int8), ("fp32", fp32))
            for key, predictor in order:
                start = time.perf_counter()
                predict_any_batch(predictor, images)
                seconds[key][step] = time.perf_counter() - start
    return (float(np.median(seconds["fp32"])) * 1e3, float(np.median(seconds["int8"])) * 1e3,
            float(np.median(seconds["fp32"] / seconds["int8"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=200, help="alternating timed steps per variant")
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--variant", action="append", help="name=key:value,... (default: QOperator and QDQ)")
    parser.add_argument("--all-variants", action="store_true", help="also QDQ per-tensor, reduce_range, "
                        "without pre-optimisation, float heads, backbone only")
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
        for text in args.variant or DEFAULT_VARIANTS + (MORE_VARIANTS if args.all_variants else []):
            name, kwargs, skip = parse_variant(text)
            variant = copy.deepcopy(cfg)
            variant.quantize.results_dir = str(Path(scratch) / name)
            variant.quantize.backend_kwargs = {"calibration_images": args.calibration_images,
                                               # its own timing is replaced by the alternating one below
                                               "latency_iterations": 5, **kwargs}
            variant.quantize.skip_names = skip
            result = quantize_model(args.checkpoint, variant, log=lambda *_: None, threads=args.threads)
            rows.append((name, result))
            # shared, busy cores: FP32 and INT8 timed call by call in alternation, medians
            fp32_ms, int8_ms, step_ratio = interleaved_latency(result, args.iterations, args.threads)
            result.fp32["latency_ms"], result.int8["latency_ms"] = fp32_ms, int8_ms
            print(f"{name:20s} fp32 {fp32_ms:7.2f} ms  int8 {int8_ms:7.2f} ms  speed-up {result.speedup:4.2f}x "
                  f"(per-step median {step_ratio:4.2f}x)  val_mAP50 {result.fp32['val_mAP50']:.4f} -> "
                  f"{result.int8['val_mAP50']:.4f} (drop {result.map50_drop:+.4f})  "
                  f"goal {'met' if result.speedup >= 1.5 and result.map50_drop <= 0.02 else 'NOT met'}", flush=True)


if __name__ == "__main__":
    main()
