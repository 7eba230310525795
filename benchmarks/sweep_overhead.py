"""bench_sweep.py part 1: the sweep's orchestration overhead (see bench_sweep.py's docstring)."""
from __future__ import annotations

import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

from sweep_harness import (METRIC, ROOT, SIZE, VAL_IMAGES, SweepRun, load, run_sweep_command,  # noqa: E402
                           write_task)
from automl.sweep.trial import read_epochs  # noqa: E402
from tests.learning.synthetic_shapes import write_shapes_dataset  # noqa: E402

# Part 1 times trials, not learning: a range that neither diverges nor fails.
SAFE_RANGES = {"train.optim.lr": {"low": 5e-4, "high": 2e-3, "log": True}}


def add_arguments(parser) -> None:
    parser.add_argument("--overhead-trials", type=int, default=3)
    parser.add_argument("--overhead-epochs", type=int, default=12, help="epochs of a part-1 trial (~1 min)")
    parser.add_argument("--overhead-images", type=int, default=128)


def make_quick(args) -> None:
    args.overhead_trials, args.overhead_epochs, args.overhead_images = 2, 2, 32

def trainer_runs(run: SweepRun) -> List[Tuple[str, dict, List[dict]]]:
    """(trial id, trainer_time.json, metrics lines) per trial, in the order the trainers started."""
    found = []
    for path in (run.automl_dir / "trials").glob("*/trainer_time.json"):
        folder = path.parent
        found.append((folder.name, json.loads(path.read_text()), read_epochs(folder)))
    return sorted(found, key=lambda item: item[1]["runs"][0]["started"])


def time_ray_start() -> Dict[str, float]:
    """Importing Ray and starting a local Ray as the sweep does, in a fresh process; and importing torch."""
    code = ("import json, os, time\nt0 = time.time()\nimport ray\nt1 = time.time()\n"
            "ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,"
            " object_store_memory=200 * 1024 * 1024, configure_logging=True, logging_level='ERROR')\n"
            "t2 = time.time()\nray.shutdown()\nt3 = time.time()\n"
            "print(json.dumps({'import_ray': t1 - t0, 'ray_init': t2 - t1, 'ray_shutdown': t3 - t2}))")
    started = time.time()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    times = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    times["process"] = time.time() - started
    torch_code = "import time; t = time.time(); import torch; print(time.time() - t)"
    done = subprocess.run([sys.executable, "-c", torch_code], capture_output=True, text=True, timeout=300)
    if done.returncode == 0:
        times["import_torch"] = float(done.stdout.strip().splitlines()[-1])
    return times


def plain_train(trial_folder: Path, work: Path) -> Tuple[float, float]:
    """A trial's own spec trained once by ``tao-automl train`` (as a trial runs it, one thread): wall
    seconds of the process and the sum of its epochs' wall_seconds."""
    spec = yaml.safe_load((trial_folder / "spec.yaml").read_text())
    spec["results_dir"] = str(work / "plain")
    path = work / "plain_spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    started = time.time()
    with open(work / "plain_train.log", "wb") as log:
        subprocess.run([sys.executable, "-m", "automl.cli", "train", "--skill", "rtdetr", "-e", str(path),
                        "--automl-policy", "off"], cwd=work, stdout=log, stderr=subprocess.STDOUT, check=True,
                       env={**os.environ, **threads, "PYTHONPATH": str(ROOT)}, timeout=3600)
    wall = time.time() - started
    epochs = read_epochs(work / "plain")
    return wall, sum(r["wall_seconds"] for r in epochs)


def part_overhead(args, work: Path) -> Dict[str, float]:
    print(f"\n== (1) orchestration overhead: {args.overhead_trials} trials one at a time, "
          f"{args.overhead_epochs} epochs of {args.overhead_images} images each, 1 CPU a trial ==", flush=True)
    root = work / "overhead"
    data = write_shapes_dataset(root / "data", args.overhead_images, VAL_IMAGES, size=SIZE, seed=0)
    spec = write_task(root, data, epochs=args.overhead_epochs, searched=["train.optim.lr"], ranges=SAFE_RANGES,
                      train_seed=1234)
    flags = ["--algorithm", "random", "--max-trials", str(args.overhead_trials), "--max-concurrent", "1",
             "--cpus-per-trial", "1", "--seed", "0", "--max-retries", "0"]
    load_before = load()
    run = run_sweep_command(spec, flags)
    load_after = load()
    print(f"  command: cd {root} && PYTHONPATH={ROOT} {shlex.join(run.command)}")
    runs = trainer_runs(run)
    if run.returncode != 0 or len(runs) != args.overhead_trials:
        raise SystemExit(f"overhead sweep did not run its {args.overhead_trials} trials: see {root / 'sweep.log'}")

    concurrency = 1   # part 1 runs its trials one at a time (--max-concurrent 1)
    trainer_total = sum(t["seconds"] for _, t, _ in runs)
    overhead = run.wall - trainer_total / concurrency
    print(f"  {'trial':<10} {'trainer s':>9} {'epochs s':>9} {'start-up+ckpt s':>15} {'epochs':>6} {METRIC:>9}")
    for trial_id, timing, lines in runs:
        epochs_s = sum(r["wall_seconds"] for r in lines)
        best = max((r[METRIC] for r in lines if r.get(METRIC) is not None), default=math.nan)
        print(f"  {trial_id:<10} {timing['seconds']:9.1f} {epochs_s:9.1f} {timing['seconds'] - epochs_s:15.1f} "
              f"{len(lines):6d} {best:9.3f}")
    spans = [(r["started"], r["ended"]) for _, t, _ in runs for r in t["runs"]]
    before = spans[0][0] - run.started
    gaps = [nxt[0] - prev[1] for prev, nxt in zip(spans, spans[1:])]
    after = run.ended - spans[-1][1]
    timings_file = run.automl_dir / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    export = float(timings.get("export", 0.0))
    print(f"  overhead := sweep wall - sum(trainer time) / concurrency = {run.wall:.1f}s - {trainer_total:.1f}s / "
          f"{concurrency} = {overhead:.1f}s  (trainer time: each trainer process from spawn to exit, so python "
          f"and torch imports, data and model build and checkpoint writes count as training, as in a plain "
          f"tao-automl train; load {load_before} -> {load_after})")
    print(f"    once per sweep, start: command start -> first trainer {before:.1f}s; inside the driver: ray.init "
          f"{timings.get('ray_start', math.nan):.1f}s alongside the MLflow store {timings.get('mlflow_store', math.nan):.1f}s, "
          f"(Ray Tune's import beside them), set-up in all {timings.get('setup', math.nan):.1f}s (python + automl imports "
          f"and the first trial's Ray worker are the rest)")
    print(f"    per trial: between trainers {', '.join(f'{g:.1f}s' for g in gaps) or '-'} (trial end recorded: "
          f"final.json, trials.csv, MLflow; the next trial handed the finished trial's Ray actor)")
    print(f"    once per sweep, end: last trainer -> command end {after:.1f}s, of which the winner's ONNX export + "
          f"ONNX Runtime check {export:.1f}s (a deliverable, reported apart), then the wait for report.html "
          f"{timings.get('report', math.nan):.1f}s (its child process drew it in "
          f"{timings.get('report_process', math.nan):.1f}s beside the export), MLflow's parent run closed with its "
          f"artifacts {timings.get('mlflow_finish', math.nan):.1f}s, the wait for Ray's shutdown (started when the "
          f"trials ended) {timings.get('ray_shutdown_wait', math.nan):.1f}s; the rest: the last trial's end in "
          f"Tune, best/ copy, summary, the process's exit")
    ray_times = time_ray_start()
    print(f"    apart, in a fresh process: import ray {ray_times.get('import_ray', math.nan):.1f}s, ray.init "
          f"{ray_times.get('ray_init', math.nan):.1f}s, ray.shutdown {ray_times.get('ray_shutdown', math.nan):.1f}s; "
          f"import torch {ray_times.get('import_torch', math.nan):.1f}s (inside each trainer's start-up)")
    first_folder = run.automl_dir / "trials" / runs[0][0]
    plain_wall, plain_epochs = plain_train(first_folder, root)
    trial_epochs = sum(r["wall_seconds"] for r in runs[0][2])
    print(f"    the first trial's spec trained alone by tao-automl train: {plain_wall:.1f}s (epochs {plain_epochs:.1f}s)"
          f" vs {runs[0][1]['seconds']:.1f}s (epochs {trial_epochs:.1f}s) inside the sweep: x"
          f"{trial_epochs / plain_epochs:.2f} epoch time in the sweep (load {load()})")
    per_trial = statistics.mean(gaps) if gaps else 0.0
    return {"wall": run.wall, "trainer": trainer_total, "overhead": overhead, "trials": len(runs),
            "percent": 100 * overhead / run.wall, "start": before, "end": after - export, "export": export,
            "gaps": per_trial, "percent_without_export": 100 * (overhead - export) / (run.wall - export),
            "trial_seconds": trainer_total / len(runs), "epoch_ratio": trial_epochs / plain_epochs,
            "ray_start": float(timings.get("ray_start", math.nan))}


def report_overhead(overhead: Dict[str, float]) -> None:
    goal = "met" if overhead["percent"] <= 5 else "not met"
    print(f"(1) overhead: {overhead['trials']} trials of {overhead['trial_seconds']:.0f}s trainer time each, one "
          f"at a time; sweep wall {overhead['wall']:.0f}s, trainers {overhead['trainer']:.0f}s, orchestration "
          f"{overhead['overhead']:.1f}s = {overhead['percent']:.1f} % of the wall time (goal <= 5 %: {goal}); "
          f"without the winner's export {overhead['percent_without_export']:.1f} %")
    print(f"    once per sweep: start {overhead['start']:.1f}s (ray.init {overhead['ray_start']:.1f}s), end "
          f"{overhead['end']:.1f}s, export of the winner {overhead['export']:.1f}s; per trial: "
          f"{overhead['gaps']:.1f}s between trainers; trainer epochs in the sweep vs alone: "
          f"x{overhead['epoch_ratio']:.2f}")
