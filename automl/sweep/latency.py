"""A trial's deploy latency: its freshly built model, exported and timed on the target runtime.

Latency depends on the architecture and the input shape, not on the weights,
so it is measured once, at the start of a trial, before any training: the
model the trial's spec describes is built with random weights, exported to
ONNX at the deploy shape (:func:`deploy_shape`) and timed with
:func:`trainers.rtdetr.benchmark.measure_latency` (median of N runs after a
few warm-up runs).  The runtime is the one the winner will be deployed on:
TensorRT FP16 where a CUDA GPU and the ``tensorrt`` package exist, else ONNX
Runtime on the CPU with the trial's CPU count as its threads.

Why a child process (``python -m automl.sweep.latency``): the trial's
threads are set before torch and ONNX Runtime start, the memory of the
export goes back when it exits, and a crash fails one trial with its reason.

The result is ``latency.json`` in the trial folder.  It carries the shape and
architecture it was measured for (:func:`measurement_key`), so a trial started
again (a retry, ``--resume``) reuses it, while a trial whose configuration
changed (a PBT clone) measures again.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from trainers.atomic_write import write_text_atomic

LATENCY_FILE = "latency.json"
LOCK_FILE = "tao-automl-latency.lock"
WARMUP_RUNS = 3
# The model's own keys that change its compute (everything else in model.* is a loss weight or a path).
ARCHITECTURE_KEYS = ("backbone", "num_queries", "num_select", "num_feature_levels", "return_interm_indices",
                     "feat_strides", "feat_channels", "use_encoder_idx", "hidden_dim", "nheads", "enc_layers",
                     "dim_feedforward", "expansion", "depth_mult", "enc_act", "act", "dec_layers", "num_points",
                     "eval_idx")


class LatencyFailed(RuntimeError):
    """The model of a trial could not be built, exported or timed; the message is one line."""


@dataclass(frozen=True)
class Latency:
    """One measurement: ``latency_ms`` is the median wall time of one deploy batch (host arrays in and out)."""

    latency_ms: float
    runtime: str                      # onnxruntime | tensorrt
    input_size: Tuple[int, int]       # H, W
    batch_size: int
    threads: int
    p90_ms: float = 0.0
    iterations: int = 0
    seconds: float = 0.0              # build + export + timing
    key: str = ""

    def over(self, budget_ms: Optional[float]) -> bool:
        """True when a budget is set and this measurement exceeds it: the trial is not worth training."""
        return budget_ms is not None and self.latency_ms > budget_ms

    def result_fields(self) -> Dict[str, Any]:
        """What every Tune result of the trial carries (the searcher and the driver read these)."""
        return {"latency_ms": float(self.latency_ms), "latency_runtime": self.runtime}

    def to_json(self) -> Dict[str, Any]:
        values = asdict(self)
        values["input_size"] = list(self.input_size)
        return values

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Latency":
        values = dict(data)
        values["input_size"] = tuple(int(v) for v in values["input_size"])
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


def deploy_shape(spec: Mapping[str, Any], fixed_size: Optional[Sequence[int]] = None) -> Tuple[int, int, int]:
    """(height, width, batch) the model is deployed at.

    The size: ``fixed_size`` (the spec's ``export.input_height`` x ``input_width`` when the user set
    them, see :func:`explicit_export_size`), else the evaluation size ``eval_spatial_size`` (the training
    size).  The batch: ``export.batch_size`` when positive, else 1 (a dynamic batch answers one image).
    """
    if fixed_size:
        height, width = (int(v) for v in fixed_size)
    else:
        augmentation = (spec.get("dataset") or {}).get("augmentation") or {}
        size = augmentation.get("eval_spatial_size") or augmentation.get("train_spatial_size") or [640, 640]
        height, width = int(size[0]), int(size[1])
    batch = int((spec.get("export") or {}).get("batch_size") or -1)
    return height, width, batch if batch > 0 else 1


def explicit_export_size(user_spec: Mapping[str, Any]) -> Optional[Tuple[int, int]]:
    """``export.input_height`` x ``input_width`` when the user's own spec (before defaults) sets either;
    the schema's 640 x 640 default is not a deploy requirement."""
    export = user_spec.get("export") if isinstance(user_spec, Mapping) else None
    if not isinstance(export, Mapping) or not ({"input_height", "input_width"} & set(export)):
        return None
    return int(export.get("input_height", 640)), int(export.get("input_width", 640))


def measurement_key(spec: Mapping[str, Any], shape: Tuple[int, int, int], threads: int) -> str:
    """What a measurement depends on: the architecture, the number of classes, the shape and the threads."""
    model = spec.get("model") or {}
    described = {"model": {k: model.get(k) for k in ARCHITECTURE_KEYS},
                 "num_classes": (spec.get("dataset") or {}).get("num_classes"), "shape": list(shape),
                 "threads": int(threads)}
    return json.dumps(described, sort_keys=True, default=str)


def target_runtime() -> str:
    """``tensorrt`` where a CUDA GPU and the tensorrt package exist, else ``onnxruntime``."""
    try:
        from trainers.rtdetr.tensorrt import missing_requirements
    except ImportError:
        return "onnxruntime"
    return "onnxruntime" if missing_requirements() else "tensorrt"


def trial_latency(spec: Dict[str, Any], spec_file: Path, folder: Path, *, threads: int, iterations: int,
                  fixed_size: Optional[Sequence[int]] = None, skill: str = "rtdetr",
                  cwd: Optional[Path] = None) -> Latency:
    """The trial's latency: ``folder/latency.json`` when it was measured for this configuration, else a
    measurement in a child process (written there).  Raises LatencyFailed with the child's reason."""
    shape = deploy_shape(spec, fixed_size)
    key = measurement_key(spec, shape, threads)
    path = folder / LATENCY_FILE
    if path.is_file():
        try:
            cached = Latency.from_json(json.loads(path.read_text()))
            if cached.key == key:
                return cached
        except (ValueError, KeyError, TypeError):
            pass   # unreadable: measure again
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "automl.sweep.latency", "--skill", skill, "--spec", str(spec_file),
               "--out", str(path), "--threads", str(threads), "--iterations", str(iterations),
               "--height", str(shape[0]), "--width", str(shape[1]), "--batch", str(shape[2]), "--key", key]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(cwd) if cwd else None,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0 or not path.is_file():
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise LatencyFailed(f"latency measurement failed: {(lines[-1] if lines else f'exit code {done.returncode}')[:400]}")
    return Latency.from_json(json.loads(path.read_text()))


def measure_model_latency(cfg, shape: Tuple[int, int, int], *, threads: int, iterations: int,
                          workdir: Path, runtime: Optional[str] = None) -> Latency:
    """Build ``cfg.model`` (random weights), export it at ``shape`` and time it on ``runtime``
    (default :func:`target_runtime`).  ``workdir`` holds the temporary checkpoint and ONNX file."""
    import torch

    from trainers.rtdetr.benchmark import measure_latency
    from trainers.rtdetr.checkpoint import save_checkpoint
    from trainers.rtdetr.export import export_onnx
    from trainers.rtdetr.model import build_model
    from trainers.rtdetr.runtime import load_predictor

    started = time.perf_counter()
    height, width, batch = shape
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(0)
    num_classes = int(cfg.dataset.num_classes)
    model = build_model(cfg.model, num_classes).eval()
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / "model.pth"
    save_checkpoint({"model": model.state_dict(), "architecture": model.arch.to_dict(),
                     "model_config": {"num_select": int(cfg.model.num_select)}, "num_classes": num_classes,
                     "category_ids": list(range(num_classes)), "class_names": [str(i) for i in range(num_classes)]},
                    checkpoint)
    onnx_file = workdir / "model.onnx"
    export_onnx(checkpoint, onnx_file, input_height=height, input_width=width, batch_size=batch, log=None)
    runtime = runtime or target_runtime()
    model_file, options = onnx_file, {"num_threads": threads}
    if runtime == "tensorrt":
        from trainers.rtdetr.tensorrt import build_engine_if_possible

        engine = build_engine_if_possible(onnx_file, workdir / "model.engine", precision="FP16", log=lambda _: None)
        if engine is None:   # the GPU could not build it: time what the sweep deploys instead
            runtime = "onnxruntime"
        else:
            model_file, options = Path(engine), {}
    device = "cuda" if runtime == "tensorrt" else "cpu"
    with load_predictor(model_file, device=device, **options) as predictor:
        timing = measure_latency(predictor, batch, (height, width), warmup=WARMUP_RUNS, iterations=iterations)
    return Latency(latency_ms=timing["batch_p50_ms"], runtime=timing["runtime"], input_size=(height, width),
                   batch_size=batch, threads=threads, p90_ms=timing["p90_ms"] * batch, iterations=iterations,
                   seconds=time.perf_counter() - started)


@contextlib.contextmanager
def _one_measurement_at_a_time():
    """Trials measured at once on one machine would time each other's exports: a per-machine lock
    (in the temp folder, so nodes of a cluster do not wait for each other).  Training trials still run
    beside a measurement; ``--max-concurrent 1`` gives the quietest numbers."""
    import fcntl

    with open(Path(tempfile.gettempdir()) / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Child process entry: measure the model of ``--spec`` and write ``--out`` (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skill", default="rtdetr")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--key", default="")
    parser.add_argument("--runtime", default=None, choices=("onnxruntime", "tensorrt"))
    args = parser.parse_args(argv)

    from automl.spec import load_spec
    from trainers.errors import UserError

    try:
        cfg = load_spec(args.skill, args.spec, [], "train")
        with _one_measurement_at_a_time(), \
                tempfile.TemporaryDirectory(prefix=".latency-", dir=str(Path(args.out).parent)) as workdir:
            latency = measure_model_latency(cfg, (args.height, args.width, args.batch), threads=args.threads,
                                            iterations=args.iterations, workdir=Path(workdir), runtime=args.runtime)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    latency = Latency(**{**latency.to_json(), "input_size": latency.input_size, "key": args.key})
    write_text_atomic(Path(args.out), json.dumps(latency.to_json(), indent=1))
    print(f"latency: {latency.latency_ms:.2f} ms ({latency.runtime}, batch {latency.batch_size}, "
          f"{latency.input_size[0]}x{latency.input_size[1]}, {latency.threads} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
