"""bench_sweep.py part 2: ASHA + TPE against random search at equal epochs (see bench_sweep.py's docstring)."""
from __future__ import annotations

import math
import shlex
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from sweep_harness import (METRIC, ROOT, SIZE, VAL_IMAGES, EpochSeen, load, one_class,  # noqa: E402
                           run_sweep_command, write_task)
from tests.learning.synthetic_shapes import write_shapes_dataset  # noqa: E402

ASHA_SEED_OFFSET = 1000
# Part 2's space: two influential knobs over four decades each, log scale, around the recipe's 1e-3:
# most of it is expected to learn nothing within a few epochs (too slow below ~1e-4, AdamW unstable
# above ~1e-2), so the settings matter and a few epochs tell good from bad.
SEARCHED = ["train.optim.lr", "train.optim.lr_backbone"]
WIDE_RANGES = {"train.optim.lr": {"low": 1e-5, "high": 1e-1, "log": True},
               "train.optim.lr_backbone": {"low": 1e-5, "high": 1e-1, "log": True}}


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sweep seeds of part 2")
    parser.add_argument("--random-trials", type=int, default=6)
    parser.add_argument("--max-epochs", type=int, default=6)
    parser.add_argument("--asha-trials", type=int, default=0, help="ASHA's --max-trials (0: half the epoch budget)")
    parser.add_argument("--search-images", type=int, default=96)
    parser.add_argument("--grace-period", type=int, default=2, help="ASHA's grace period in part 2 (epochs)")


def make_quick(args) -> None:
    args.random_trials, args.max_epochs, args.search_images, args.grace_period = 2, 2, 32, 1
    args.seeds = args.seeds[:1] if args.seeds != [0, 1, 2] else [0]

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


def report_search(search: List[SeedResult]) -> None:
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


