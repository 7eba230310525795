"""``tao-automl benchmark``: latency and throughput of a .pth, .onnx or .engine at several batch sizes.

:func:`measure_latency` times one predictor at one batch size (the sweep's
latency-aware objective calls it per trial); :func:`run_benchmark` does every
``benchmark.batch_sizes`` entry, writes ``benchmark.json`` to
``benchmark.results_dir`` (default ``<results_dir>/benchmark``) and prints a
table.  Latency is the wall time of ``predict`` on a preprocessed batch
(host arrays in, host arrays out: what evaluate and inference pay), per image
= per batch / batch size; the input is random pixels of the model's size.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from trainers.errors import UserError

from .engine.run_files import write_json_atomic
from .runtime import Predictor, load_predictor, predict_any_batch

Log = Optional[Callable[[str], None]]
RESULTS_FILE = "benchmark.json"


def measure_latency(predictor: Predictor, batch_size: int, input_size: Tuple[int, int], warmup: int = 10,
                    iterations: int = 50) -> Dict[str, Any]:
    """Time ``iterations`` runs of a ``[batch_size, 3, H, W]`` batch after ``warmup`` untimed ones.

    Returns ``runtime``, ``batch_size``, ``input_size`` [H, W], ``p50_ms``/``p90_ms``/``p99_ms``/``mean_ms``
    (per image), ``batch_p50_ms`` (per batch) and ``throughput`` (images per second over the timed runs).
    """
    if batch_size < 1 or iterations < 1 or warmup < 0:
        raise ValueError(f"batch_size {batch_size} and iterations {iterations} must be >= 1, warmup >= 0")
    height, width = input_size
    images = np.random.default_rng(0).random((batch_size, 3, height, width), dtype=np.float32)
    for _ in range(warmup):
        predict_any_batch(predictor, images)
    seconds = np.empty(iterations)
    for index in range(iterations):
        start = time.perf_counter()
        predict_any_batch(predictor, images)
        seconds[index] = time.perf_counter() - start
    per_image_ms = seconds * 1000.0 / batch_size
    return {
        "runtime": predictor.runtime,
        "batch_size": int(batch_size),
        "input_size": [int(height), int(width)],
        "warmup": int(warmup),
        "iterations": int(iterations),
        "p50_ms": float(np.percentile(per_image_ms, 50)),
        "p90_ms": float(np.percentile(per_image_ms, 90)),
        "p99_ms": float(np.percentile(per_image_ms, 99)),
        "mean_ms": float(per_image_ms.mean()),
        "batch_p50_ms": float(np.percentile(seconds * 1000.0, 50)),
        "throughput": float(batch_size * iterations / seconds.sum()),
    }


def run_benchmark(cfg, checkpoint: Optional[str] = None, log: Log = print) -> Dict[str, Any]:
    """``tao-automl benchmark``: every batch size of ``benchmark.batch_sizes``; returns what benchmark.json holds."""
    settings = cfg.benchmark
    checkpoint = str(checkpoint or settings.checkpoint or "")
    if not checkpoint or checkpoint == "???":
        raise UserError("benchmark.checkpoint: no model given (a .pth, .onnx or .engine)")
    if not Path(checkpoint).is_file():
        raise UserError(f"benchmark.checkpoint: {checkpoint}: file not found")
    batch_sizes = _batch_sizes(settings.batch_sizes)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with load_predictor(checkpoint, device=device) as predictor:
        input_size = _input_size(predictor, cfg)
        rows = [measure_latency(predictor, size, input_size, int(settings.warmup), int(settings.iterations))
                for size in batch_sizes]
    report = {"checkpoint": checkpoint, "runtime": predictor.runtime, "device": device,
              "processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
              "results": rows}
    out_dir = Path(settings.results_dir) if settings.results_dir else Path(cfg.results_dir or ".") / "benchmark"
    path = write_json_atomic(out_dir / RESULTS_FILE, report)
    if log is not None:
        log(format_table(report))
        log(f"results: {path}")
    return report


def format_table(report: Dict[str, Any]) -> str:
    """A header line and one row per batch size."""
    first = report["results"][0]
    lines = [f"benchmark: {report['checkpoint']} ({report['runtime']}, {report['device']}, "
             f"{first['input_size'][0]}x{first['input_size'][1]}, {first['warmup']} warm-up + "
             f"{first['iterations']} timed runs)",
             f"{'batch':>5}  {'p50 ms/img':>10}  {'p90 ms/img':>10}  {'p99 ms/img':>10}  {'images/s':>9}"]
    for row in report["results"]:
        lines.append(f"{row['batch_size']:>5}  {row['p50_ms']:>10.2f}  {row['p90_ms']:>10.2f}  "
                     f"{row['p99_ms']:>10.2f}  {row['throughput']:>9.1f}")
    return "\n".join(lines)


def _batch_sizes(values: Sequence[Any]) -> List[int]:
    values = list(values or [])
    bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v < 1]
    if not values or bad:
        raise UserError(f"benchmark.batch_sizes: {values!r}: give a list of positive batch sizes, e.g. [1, 4]")
    return [int(v) for v in values]


def _input_size(predictor: Predictor, cfg) -> Tuple[int, int]:
    """The model's fixed input size, else (a .pth) the spec's dataset.augmentation.eval_spatial_size."""
    if predictor.info.input_size:
        return tuple(int(v) for v in predictor.info.input_size)
    size = cfg.dataset.augmentation.eval_spatial_size
    return int(size[0]), int(size[1])
