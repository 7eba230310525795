"""Does a latency-aware sweep find a better model within a latency budget than tuning the default architecture?

    python benchmarks/bench_latency_sweep.py [--trials 8] [--epochs 5] [--size 160] [--fraction 0.6] [--seed 0]

On drawn shapes (tests/learning/synthetic_shapes.py) with the tiny preset as the
default architecture (resnet_18, hidden 128, 3 decoder layers, 50 queries):

1. the default architecture's deploy latency is measured alone (ONNX Runtime, batch 1, at --size,
   --cpus-per-trial threads) and the budget is set to --fraction of it: the default model at its
   own size cannot meet it;
2. sweep (a), the default architecture: training hyperparameters (lr, weight decay) and only the
   input size are searched, with the same budget, so its winner is the best default-architecture
   model that meets the budget;
3. sweep (b), ``--objective map50-latency --latency-budget-ms``: the same plus the architecture knobs
   (hidden_dim, dec_layers, num_queries; the tiny preset's resnet_18 is already the shallowest backbone);
4. both winners' exported ONNX models are timed again, alone, and compared with the budget.

Both sweeps run the same trials, epochs, algorithm (ASHA) and seed through the real command line.
Sweep (a) is the budgeted mode too, rather than a plain map50 sweep filtered afterwards: its
over-budget trials stop untrained and TPE learns to avoid them, so the baseline gets every trial's
worth of search inside the budget (a stronger baseline, not a weaker one).  Trials measure their
latency while another trial may be training on the other core, which only makes their numbers
higher (the budget is judged conservatively); the final re-measurement runs alone.

Writes ``--out`` (default runs/bench_latency_sweep/) with both sweeps and ``summary.json``.
About 10 minutes on 2 quiet cores with the defaults.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.learning.synthetic_shapes import write_shapes_dataset  # noqa: E402
from tests.learning.tiny_preset import shapes_spec, write_spec  # noqa: E402

TRAINING = ["train.optim.lr", "train.optim.weight_decay"]
ARCHITECTURE = ["model.hidden_dim", "model.dec_layers", "model.num_queries"]   # resnet_18 is the shallowest
INPUT_SIZE_KEY = "dataset.augmentation.train_spatial_size"   # enable_disabled: the input size is searched


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per sweep")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of a full trial")
    parser.add_argument("--size", type=int, default=160,
                        help="image and default input size (multiple of 32); sizes 96, 128, 160 are searched")
    parser.add_argument("--train-images", type=int, default=128)
    parser.add_argument("--val-images", type=int, default=32)
    parser.add_argument("--fraction", type=float, default=0.6, help="budget = fraction x default latency")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus-per-trial", type=int, default=1)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=50, help="timed runs of the final re-measurements")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_latency_sweep")
    return parser.parse_args(argv)


def base_spec(args, data) -> dict:
    spec = shapes_spec(data, args.out / "unused", size=args.size, epochs=args.epochs, batch_size=8)
    spec["train"]["optim"]["warmup_steps"] = 10
    spec["train"]["validation_interval"] = 1
    spec["dataset"]["workers"] = 1
    return spec


def default_latency(spec_file: Path, args) -> dict:
    """The default architecture at the default size, built and timed like a trial's model, alone."""
    from automl.spec import load_spec
    from automl.sweep.latency import measure_model_latency

    cfg = load_spec("rtdetr", spec_file, [], "train")
    latency = measure_model_latency(cfg, (args.size, args.size, 1), threads=args.cpus_per_trial,
                                    iterations=args.iterations, workdir=args.out / "default_latency")
    return latency.to_json()


def run_sweep(name: str, spec: dict, searched: list, budget: float, args) -> dict:
    folder = args.out / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = json.loads(json.dumps(spec))
    spec["results_dir"] = str(folder / "results")
    spec["automl"] = {"hyperparameters": searched + [INPUT_SIZE_KEY],
                      "enable_disabled": [INPUT_SIZE_KEY] + [k for k in searched if k == "model.hidden_dim"]}
    spec_file = write_spec(spec, folder / "spec.yaml")
    command = [sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec_file),
               "--latency-budget-ms", f"{budget:.3f}", "--algorithm", "asha", "--max-trials", str(args.trials),
               "--seed", str(args.seed), "--cpus-per-trial", str(args.cpus_per_trial),
               "--max-concurrent", str(args.max_concurrent)]
    print(f"\n[{name}] {' '.join(shlex.quote(c) for c in command)}", flush=True)
    started = time.perf_counter()
    with open(folder / "sweep.log", "w") as log:
        done = subprocess.run(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - started
    automl = folder / "results" / "automl"
    rows = list(csv.DictReader((automl / "trials.csv").open())) if (automl / "trials.csv").is_file() else []
    fitting = [r for r in rows if r["status"] in ("completed", "pruned") and r["best_val_mAP50"]]
    best = max(fitting, key=lambda r: float(r["best_val_mAP50"])) if fitting else None
    print(f"[{name}] exit {done.returncode} in {seconds:.0f}s: " +
          ", ".join(f"{status} {sum(r['status'] == status for r in rows)}" for status in sorted({r['status'] for r in rows})))
    for row in sorted(rows, key=lambda r: r["trial_id"]):
        shown = {k.split(".")[-1]: row[k] for k in row if k.startswith(("model.", "train.", "input_size"))}
        print(f"  {row['trial_id']} {row['status']:<11} val_mAP50 {row['best_val_mAP50'] or '-':<8.8} "
              f"latency {row['latency_ms']} ms  {shown}")
    return {"name": name, "exit_code": done.returncode, "seconds": seconds, "trials": rows, "best": best,
            "onnx": str(automl / "export" / "model.onnx"), "log": str(folder / "sweep.log")}


def remeasure(onnx_file: str, args) -> float:
    """The exported winner timed alone: median ms of one batch-1 run (ONNX Runtime, the trial's threads)."""
    from trainers.rtdetr.benchmark import measure_latency
    from trainers.rtdetr.runtime.onnxruntime import OnnxRuntimePredictor

    predictor = OnnxRuntimePredictor(onnx_file, num_threads=args.cpus_per_trial)
    try:
        return measure_latency(predictor, 1, tuple(predictor.info.input_size), warmup=5,
                               iterations=args.iterations)["batch_p50_ms"]
    finally:
        predictor.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    print("command: python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]), flush=True)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.cpus_per_trial))
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    started = time.perf_counter()
    data = write_shapes_dataset(args.out / "shapes", args.train_images, args.val_images, size=args.size, seed=11)
    spec = base_spec(args, data)
    base = default_latency(write_spec({**spec, "results_dir": str(args.out / "unused")}, args.out / "default.yaml"),
                           args)
    budget = args.fraction * base["latency_ms"]
    print(f"default architecture (resnet_18, hidden 128, 3 decoder layers, 50 queries) at {args.size}x{args.size}: "
          f"{base['latency_ms']:.2f} ms ({base['runtime']}, {args.cpus_per_trial} thread(s)); "
          f"budget {args.fraction:g} x = {budget:.2f} ms", flush=True)

    default_arch = run_sweep("a_default_architecture", spec, TRAINING, budget, args)
    latency_aware = run_sweep("b_latency_aware", spec, TRAINING + ARCHITECTURE, budget, args)

    summary = {"command": sys.argv, "default_latency": base, "budget_ms": budget, "fraction": args.fraction,
               "trials": args.trials, "epochs": args.epochs, "seed": args.seed, "size": args.size, "sweeps": {}}
    print("\nresult (val_mAP50 of the best trial that meets the budget; latency re-measured alone):")
    for result in (default_arch, latency_aware):
        best = result["best"]
        entry = {"seconds": result["seconds"], "exit_code": result["exit_code"], "best": best}
        if best is not None and Path(result["onnx"]).is_file():
            again = remeasure(result["onnx"], args)
            entry.update(remeasured_ms=again, within_budget=again <= budget, ratio_to_budget=again / budget)
            config = {k.split(".")[-1]: best[k] for k in best if k.startswith(("model.", "input_size"))}
            print(f"  {result['name']:<24} val_mAP50 {float(best['best_val_mAP50']):.4f}  trial latency "
                  f"{float(best['latency_ms']):.2f} ms  re-measured {again:.2f} ms = {again / budget:.2f} x budget "
                  f"({'meets' if again <= budget else 'MISSES'} it)  {config}")
        else:
            print(f"  {result['name']:<24} no trial met the budget (see {result['log']})")
        summary["sweeps"][result["name"]] = entry
    a, b = default_arch["best"], latency_aware["best"]
    if a is not None and b is not None:
        gain = float(b["best_val_mAP50"]) - float(a["best_val_mAP50"])
        summary["map50_gain"] = gain
        print(f"latency-aware minus default-architecture val_mAP50: {gain:+.4f}")
    summary["wall_seconds"] = time.perf_counter() - started
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"wall time {summary['wall_seconds']:.0f}s; summary: {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
