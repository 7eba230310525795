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

(2) Search (sizes, defaults and the reasoning behind them: benchmarks/sweep_search.py).
    The drawn shapes as one class at 64 px; train.optim.lr and lr_backbone
    over [1e-5, 1e-1], log scale.  For each seed: random search, every trial
    to the end (FIFO); then ASHA + TPE (its sampler seeded seed + 1000, so its
    random start-up does not replay random search's draws), stopped once it
    reaches random search's best or has used the same epochs.  Both run 2
    trials at a time.  Every epoch's metrics line is seen as it appears
    (polled every 0.2 s), which orders the epochs of concurrent trials;
    best-so-far val_mAP50 is then a function of cumulative epochs (pruned
    trials' epochs included).  Reported per seed: random search's best and
    the epoch it came at, the epochs ASHA needed to reach it, over random's
    total (the goal: <= 1/3) and over random's epochs until its best.

    python benchmarks/bench_sweep.py                     # both parts, seeds 0 1 2
    python benchmarks/bench_sweep.py --part search       # part 2 alone (about 18 min a seed on 2 cores)
    python benchmarks/bench_sweep.py --quick             # everything smaller: checks that it runs (minutes)
    python benchmarks/bench_sweep.py --part search --seeds 0 1 2 3 4
    python benchmarks/bench_sweep.py --part search --max-epochs 27 --asha-budget-fraction 0.3333
                                                         # the larger budget (about 36 min a seed)
    python benchmarks/bench_sweep.py --part search --max-epochs 27 --asha-budget-fraction 0.3333 \
        --reuse-random EARLIER_WORKDIR                   # random search read back from an earlier --workdir:
                                                         # after a scheduler or searcher change (6-10 min a seed)

benchmarks/sweep_search_ceiling.py reads part 2's random-search curves back and tells how far the goal
is within reach on the task: each rung's rank correlation with the end, and how often successive halving
over n random draws (no sampler) would reach random search's best, in seconds.

The machine's load average is printed next to the numbers: on shared cores
the absolute seconds move with it, the overhead ratio much less.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sweep_overhead  # noqa: E402
import sweep_search  # noqa: E402
from sweep_harness import BATCH, SIZE, VAL_IMAGES, load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("overhead", "search", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="everything smaller: a few minutes, checks it runs")
    parser.add_argument("--workdir", type=Path, default=None, help="keep everything here (default: a temp folder)")
    sweep_overhead.add_arguments(parser)
    sweep_search.add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        sweep_overhead.make_quick(args)
        sweep_search.make_quick(args)

    command_line = shlex.join([Path(sys.executable).name, *sys.argv])
    print(f"{command_line}\ncpus {os.cpu_count()}, load {load()} (the cores are shared: absolute seconds move with "
          f"the load); tiny preset {SIZE}x{SIZE}, batch {BATCH}, {VAL_IMAGES} val images "
          f"(part 2: {args.search_val_images})", flush=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        overhead = sweep_overhead.part_overhead(args, work) if args.part in ("overhead", "both") else None
        search = sweep_search.part_search(args, work) if args.part in ("search", "both") else None
        report(command_line, overhead, search, time.time() - started)


def report(command_line: str, overhead: Optional[Dict[str, float]],
           search: Optional[List[sweep_search.SeedResult]], seconds: float) -> None:
    print(f"\n== summary ({command_line}; {seconds / 60:.1f} min, load now {load()}, 2 shared cores) ==")
    if overhead:
        sweep_overhead.report_overhead(overhead)
    if search:
        sweep_search.report_search(search)


if __name__ == "__main__":
    main()
