"""Sweep benchmarks: (1) orchestration overhead per trial, (2) ASHA + TPE against random search at equal epochs.

Both parts run the real command, ``tao-automl sweep --skill rtdetr -e SPEC ...``,
as a child process on a synthetic task: the drawn shapes set
(tests/learning/synthetic_shapes.py, sparse category ids) and the tiny preset
(tests/learning/tiny_preset.py: resnet_18-shaped backbone, 128 wide, 3 decoder
layers) at 64x64, batch 8, 1 CPU (one torch thread) per trial.

(1) Overhead.  ``--overhead-trials`` (3) random-search trials, one at a time
    (--max-concurrent 1), each long enough to train for about a minute.
    overhead := sweep wall - sum(trainer time) / concurrency, where a trial's
    trainer time is its trainer_time.json: each trainer process's whole life,
    from spawn to exit, so python + torch imports, data and model build and
    checkpoint writes count as training (a plain ``tao-automl train`` pays
    them too).  It is split into once per sweep (command start -> first
    trainer: imports, ray.init beside the MLflow store creation, Tune set-up;
    last trainer -> command end: summary, best/ copy, Ray shutdown, and the
    winner's ONNX export + ONNX Runtime check, a deliverable reported apart,
    from results/automl/timings.json) and per trial (between one trainer's
    exit and the next one's spawn).  Ray's start-up is also timed in a fresh
    process, and one plain ``tao-automl train`` of a trial's spec tells
    whether a trainer runs slower inside a sweep than alone.
    Goal: overhead <= 5 % of the wall time with trials of a minute or more.

(2) Search.  The task: the drawn shapes, every shape one class (a task the
    tiny preset learns within a few epochs at 64 px with a good learning
    rate), ``--search-images`` (96) training images.  The space:
    train.optim.lr and lr_backbone over [1e-5, 1e-1], log scale: four decades
    each around the recipe's 1e-3 (which reaches ~0.18 val_mAP50 in 6 epochs
    of 128 images, measured alone), most of which is expected to learn
    nothing in 6 epochs (too slow below ~1e-4, AdamW unstable above ~1e-2).  For each
    seed: random search, ``--random-trials`` (6) trials x ``--max-epochs`` (6)
    epochs, every trial to the end (FIFO); then ASHA + TPE (``--grace-period``
    2: after one epoch even a good learning rate scores ~0 val_mAP50 on this
    task, after two it starts to show;
    reduction factor 3, same max epochs; its sampler seed is the seed + 1000,
    so its random start-up does not replay random search's configurations),
    stopped (SIGINT, Ray Tune's graceful stop) once its completed epochs reach
    random search's total.  Both run 2 trials at a time.  Every epoch's metrics
    line is seen as it appears (polled every 0.2 s), which orders the epochs of
    concurrent trials; best-so-far val_mAP50 is then a function of cumulative
    epochs (pruned trials' epochs included, also an epoch a trainer finished
    after its rung before it was stopped).  Reported per seed: the epochs
    random search used until its best, the epochs ASHA needed to reach that
    value, their ratio (goal <= 1/3) and ASHA's epochs over random's total
    budget; medians over the seeds.

    python benchmarks/bench_sweep.py                     # both parts, seeds 0 1 2
    python benchmarks/bench_sweep.py --part search       # part 2 alone (the ~15 min default on 2 quiet cores)
    python benchmarks/bench_sweep.py --quick             # everything smaller: checks that it runs (minutes)
    python benchmarks/bench_sweep.py --part search --seeds 0 1 2 3 4

The machine's load average is printed next to the numbers: on shared cores
the absolute seconds move with it, the overhead ratio much less.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.learning.synthetic_shapes import write_shapes_dataset  # noqa: E402
from automl.sweep.trial import read_epochs  # noqa: E402
from sweep_harness import (BATCH, METRIC, SIZE, EpochSeen, SweepRun, one_class,  # noqa: E402
                           run_sweep_command, write_task)

VAL_IMAGES = 32
ASHA_SEED_OFFSET = 1000
# Part 2's space: two influential knobs over four decades each, log scale, around the recipe's 1e-3:
# most of it is expected to learn nothing within a few epochs (too slow below ~1e-4, AdamW unstable
# above ~1e-2), so the settings matter and a few epochs tell good from bad.
SEARCHED = ["train.optim.lr", "train.optim.lr_backbone"]
WIDE_RANGES = {"train.optim.lr": {"low": 1e-5, "high": 1e-1, "log": True},
               "train.optim.lr_backbone": {"low": 1e-5, "high": 1e-1, "log": True}}
# Part 1 times trials, not learning: a range that neither diverges nor fails.
SAFE_RANGES = {"train.optim.lr": {"low": 5e-4, "high": 2e-3, "log": True}}


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


# ---------------------------------------------------------------------------------------------- part 1
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
          f"set-up in all {timings.get('setup', math.nan):.1f}s (python + automl imports and the first trial's Ray "
          f"worker are the rest)")
    print(f"    per trial: between trainers {', '.join(f'{g:.1f}s' for g in gaps) or '-'} (trial end recorded: "
          f"final.json, trials.csv, MLflow; the next trial's Ray worker started)")
    print(f"    once per sweep, end: last trainer -> command end {after:.1f}s, of which the winner's ONNX export + "
          f"ONNX Runtime check {export:.1f}s (a deliverable, reported apart), report.html "
          f"{timings.get('report', math.nan):.1f}s, MLflow's parent run closed with its artifacts "
          f"{timings.get('mlflow_finish', math.nan):.1f}s; the rest: the last trial's end in Tune, best/ copy, "
          f"summary, Ray shutdown")
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


# ---------------------------------------------------------------------------------------------- part 2
def best_so_far(epochs: List[EpochSeen]) -> List[float]:
    """best_so_far[k - 1]: the best METRIC among the first k epochs the sweep completed (0 before any)."""
    curve, best = [], 0.0
    for seen in sorted(epochs, key=lambda e: e.seconds):
        if seen.value is not None and math.isfinite(seen.value):
            best = max(best, seen.value)
        curve.append(best)
    return curve


def epochs_to_reach(curve: List[float], target: float) -> Optional[int]:
    for index, value in enumerate(curve):
        if value >= target:
            return index + 1
    return None


@dataclass
class SeedResult:
    seed: int
    random_total: int
    random_best: float
    random_epochs_to_best: int
    asha_total: int
    asha_best: float
    asha_epochs_to_target: Optional[int]
    random_at_third: float
    asha_at_third: float
    asha_trials: str
    random_wall: float
    asha_wall: float

    @property
    def ratio(self) -> Optional[float]:
        """ASHA's epochs to reach random's best / the epochs random search used until its best."""
        return None if self.asha_epochs_to_target is None else self.asha_epochs_to_target / self.random_epochs_to_best

    @property
    def ratio_of_total(self) -> Optional[float]:
        """The same against random search's whole budget (the epochs both were given)."""
        return None if self.asha_epochs_to_target is None else self.asha_epochs_to_target / self.random_total


def part_search(args, work: Path) -> List[SeedResult]:
    budget = args.random_trials * args.max_epochs
    asha_trials = args.asha_trials or max(args.random_trials, math.ceil(budget / 2))
    print(f"\n== (2) ASHA + TPE vs random search at equal epochs: random {args.random_trials} trials x "
          f"{args.max_epochs} epochs = {budget} epochs; ASHA (grace {args.grace_period}, reduction 3) up to {asha_trials} trials, "
          f"stopped at {budget} epochs; {args.search_images} train images, 2 trials at a time ==", flush=True)
    data = one_class(write_shapes_dataset(work / "search_data", args.search_images, VAL_IMAGES, size=SIZE, seed=0))
    common = ["--max-epochs", str(args.max_epochs), "--max-concurrent", "2", "--cpus-per-trial", "1",
              "--max-retries", "0"]
    results: List[SeedResult] = []
    for seed in args.seeds:
        runs = {}
        for name, flags, budget_epochs in (
                ("random", ["--algorithm", "random", "--max-trials", str(args.random_trials)], None),
                ("asha", ["--algorithm", "asha", "--max-trials", str(asha_trials), "--grace-period", str(args.grace_period),
                          "--reduction-factor", "3"], budget)):
            root = work / f"seed{seed}_{name}"
            spec = write_task(root, data, epochs=args.max_epochs, searched=SEARCHED, ranges=WIDE_RANGES,
                              train_seed=1234 + seed, num_classes=1)
            # Independent draws: with one seed, TPE's random start-up would propose random search's very configs.
            sweep_seed = seed if name == "random" else seed + ASHA_SEED_OFFSET
            run = run_sweep_command(spec, flags + common + ["--seed", str(sweep_seed)], budget_epochs=budget_epochs)
            runs[name] = run
            statuses = [row["status"] for row in run.trials()]
            # Trials still running at the budget stop stay 'running' in trials.csv.
            counts = ", ".join(f"{statuses.count(s)} {'cut at the budget' if s == 'running' else s}"
                               for s in sorted(set(statuses)))
            best = max((e.value for e in run.epochs if e.value is not None), default=math.nan)
            print(f"  seed {seed} {name:<6}: {len(run.epochs)} epochs, {len(statuses)} trials ({counts}), best "
                  f"{METRIC} {best:.3f}, {run.wall:.0f}s (load {load()})", flush=True)
            if seed == args.seeds[0]:
                print(f"    command: cd {root} && PYTHONPATH={ROOT} {shlex.join(run.command)}")
        random_curve = best_so_far(runs["random"].epochs)
        asha_curve = best_so_far(runs["asha"].epochs)[:budget]   # epochs past the budget are not counted
        if not random_curve or not asha_curve:
            print(f"  seed {seed}: a sweep completed no epoch; skipped")
            continue
        target = random_curve[-1]
        third = max(1, len(random_curve) // 3)
        asha_statuses = [row["status"] for row in runs["asha"].trials()]
        results.append(SeedResult(
            seed=seed, random_total=len(random_curve), random_best=target,
            random_epochs_to_best=epochs_to_reach(random_curve, target) or len(random_curve),
            asha_total=len(asha_curve), asha_best=asha_curve[-1],
            asha_epochs_to_target=epochs_to_reach(asha_curve, target) if target > 0 else None,
            random_at_third=random_curve[third - 1], asha_at_third=asha_curve[min(third, len(asha_curve)) - 1],
            asha_trials=f"{len(asha_statuses)} ({asha_statuses.count('pruned')} pruned)",
            random_wall=runs["random"].wall, asha_wall=runs["asha"].wall))
    return results


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("overhead", "search", "both"), default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sweep seeds of part 2")
    parser.add_argument("--quick", action="store_true", help="everything smaller: a few minutes, checks it runs")
    parser.add_argument("--overhead-trials", type=int, default=3)
    parser.add_argument("--overhead-epochs", type=int, default=12, help="epochs of a part-1 trial (~1 min)")
    parser.add_argument("--overhead-images", type=int, default=128)
    parser.add_argument("--random-trials", type=int, default=6)
    parser.add_argument("--max-epochs", type=int, default=6)
    parser.add_argument("--asha-trials", type=int, default=0, help="ASHA's --max-trials (0: half the epoch budget)")
    parser.add_argument("--search-images", type=int, default=96)
    parser.add_argument("--grace-period", type=int, default=2, help="ASHA's grace period in part 2 (epochs)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep everything here (default: a temp folder)")
    args = parser.parse_args()
    if args.quick:
        args.overhead_trials, args.overhead_epochs, args.overhead_images = 2, 2, 32
        args.random_trials, args.max_epochs, args.search_images, args.grace_period = 2, 2, 32, 1
        args.seeds = args.seeds[:1] if args.seeds != [0, 1, 2] else [0]

    command_line = shlex.join([Path(sys.executable).name, *sys.argv])
    print(f"{command_line}\ncpus {os.cpu_count()}, load {load()} (the cores are shared: absolute seconds move with "
          f"the load); tiny preset {SIZE}x{SIZE}, batch {BATCH}, {VAL_IMAGES} val images", flush=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        overhead = part_overhead(args, work) if args.part in ("overhead", "both") else None
        search = part_search(args, work) if args.part in ("search", "both") else None
        report(command_line, overhead, search, time.time() - started)


def report(command_line: str, overhead: Optional[Dict[str, float]], search: Optional[List[SeedResult]],
           seconds: float) -> None:
    print(f"\n== summary ({command_line}; {seconds / 60:.1f} min, load now {load()}, 2 shared cores) ==")
    if overhead:
        goal = "met" if overhead["percent"] <= 5 else "not met"
        print(f"(1) overhead: {overhead['trials']} trials of {overhead['trial_seconds']:.0f}s trainer time each, one "
              f"at a time; sweep wall {overhead['wall']:.0f}s, trainers {overhead['trainer']:.0f}s, orchestration "
              f"{overhead['overhead']:.1f}s = {overhead['percent']:.1f} % of the wall time (goal <= 5 %: {goal}); "
              f"without the winner's export {overhead['percent_without_export']:.1f} %")
        print(f"    once per sweep: start {overhead['start']:.1f}s (ray.init {overhead['ray_start']:.1f}s), end "
              f"{overhead['end']:.1f}s, export of the winner {overhead['export']:.1f}s; per trial: "
              f"{overhead['gaps']:.1f}s between trainers; trainer epochs in the sweep vs alone: "
              f"x{overhead['epoch_ratio']:.2f}")
    if search:
        print("(2) epochs counted as the trainers completed them (pruned trials included, concurrent trials in "
              "the order their epochs ended)")
        print(f"    {'seed':>4} | {'random best':>11} {'at epoch':>8} {'of':>4} | {'ASHA best':>9} {'epochs to':>9} "
              f"{'ratio':>6} {'/total':>6} | {'at 1/3: rnd':>11} {'ASHA':>6} | {'ASHA trials':>16} | "
              f"{'wall rnd/ASHA':>13}")
        for r in search:
            reached = "never" if r.asha_epochs_to_target is None else str(r.asha_epochs_to_target)
            ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
            of_total = "-" if r.ratio_of_total is None else f"{r.ratio_of_total:.2f}"
            print(f"    {r.seed:>4} | {r.random_best:11.3f} {r.random_epochs_to_best:8d} {r.random_total:4d} | "
                  f"{r.asha_best:9.3f} {reached:>9} {ratio:>6} {of_total:>6} | {r.random_at_third:11.3f} "
                  f"{r.asha_at_third:6.3f} | {r.asha_trials:>16} | {r.random_wall:6.0f}/{r.asha_wall:.0f}s")
        for label, key in (("random's epochs until its best", "ratio"), ("random's total epochs", "ratio_of_total")):
            ratios = [getattr(r, key) if getattr(r, key) is not None else math.inf for r in search]
            median = statistics.median(ratios)
            met = sum(1 for x in ratios if x <= 1 / 3)
            median_text = "never (not within the same total epochs)" if math.isinf(median) else f"{median:.2f}"
            print(f"    ASHA epochs to reach random search's best / {label}: median {median_text} "
                  f"(goal <= 0.33: {'met' if median <= 1 / 3 else 'not met'}; met in {met} of {len(search)} seeds)")


if __name__ == "__main__":
    main()
