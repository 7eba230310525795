"""bench_sweep.py part 2: ASHA + TPE against random search at equal epochs (bench_sweep.py's docstring
says how epochs are counted; the task's sizes are here).

The task is sized so that one epoch already tells a good learning rate from a bad one, which is what
ASHA's grace period relies on: 192 training images at batch 4 (48 optimizer steps an epoch; at 96 images
and batch 8, 12 steps, every setting still scored ~0 val_mAP50 after one epoch and most after two).
Measured on seed 2's random trials: the two best final scores (0.71, 0.70) had the two best epoch-1
scores (0.069, 0.053).  Random search: 8 trials x 9 epochs = 72 epochs.  ASHA + TPE: grace 1 epoch,
reduction factor 3 (rungs at 1, 3 and 9 epochs), up to 72 trials, stopped at the same 72 epochs, or as
soon as it reaches random search's best (the epochs after that cannot change the ratios; with
``--side-by-side`` both run at once and ASHA runs to the budget).  With ``--max-epochs 3`` (rungs at
1 and 3) successive halving could save at most 3x, exactly the goal, so the default is 9.

Back of the envelope: reaching random search's best within a third of the 72 epochs leaves ASHA 24
epochs, and the configuration that gets there needs most of its 9 of them, while the second trial
slot spends about as many on probes; so it must be proposed within roughly the first 6-8 epochs, i.e.
among ASHA's first probes, mostly its 8 random start-up draws (startup_trials(72)), and be as good as
the best of random search's 8 fully trained draws.  When random search's best is near the task's
optimum (seed 2: 0.71), that asks for luck more than for a better sampler (about 18 min a seed on 2
cores).

The larger budget: ``--max-epochs 27`` (rungs at 1, 3, 9 and 27; random search 8 x 27 = 216 epochs,
about 30 min a seed) leaves ASHA 72 epochs, room for about 25 one-epoch probes, TPE's among them, and
for the winner's full 27.  ``--asha-budget-fraction 0.3333`` then stops ASHA at those 72 epochs: a seed
that has not reached random search's best by then has missed the goal, and the rest of the budget could
not change that (measured: about 36 min a seed in all).  Epoch-1 scores at this budget are mostly near 0 (seed 0's
random trials: 0 to 0.04, and the 0.04 trial ended at 0.04), so ASHA's first rung sorts noise more often
than at 9 epochs, and every later rung's decisions matter more.  ASHA gets through 10 to 22 trials in its
72 epochs, and TPE's start-up at ``--max-trials`` 216 is 10 random draws (:func:`startup_trials`), so at
this budget the comparison is mostly ASHA's rungs against plain random search.

``--reuse-random WORKDIR`` reads each seed's random search back from an earlier run's folder (random
search involves no scheduler, and CPU training is deterministic): after a scheduler or searcher change
only ASHA runs, 5 to 9 minutes a seed at the larger budget.  Each run also writes random_record.json
into --workdir (each seed's random-search best, the epoch it came at, its epochs): ``--random-record``
takes those numbers for seeds whose folders are gone (a 38-minute run saved per seed).

``--early-stopping hyperband`` (or bohb) sets HyperBand + TPE against the same random searches: its first
bracket is synchronous successive halving, so with ``--grace-period 3 --asha-trials 9`` it is one bracket
of 9 draws compared at epochs 3 and 9 (63 epochs, within a third of 216).  benchmarks/sweep_search_replay.py
compares these rules on recorded curves.

``--decades 7`` searches lr and lr_backbone over [1e-8, 1e-1] instead of [1e-5, 1e-1], where good pairs are
rare.  Measured (27 epochs, seeds 0 1 2, ``--asha-budget-fraction 0.3333``, 143 min): random search's best
0.941 / 0.226 / 0.757 (seed 1 drew no good pair); ASHA + TPE within 72 epochs 0.926 / 0.281 (at epoch 30)
/ 0.380: met on 1 of 3.  ASHA ran 16 / 5 / 9 trials; on seeds 0 and 2 early, mediocre configurations
trained 26-27 epochs each (seed 0: one ending at 0.62; seed 2: two, at 0.32 and 0.38), and on seed 2 one that
learned nothing 9, because the rungs below them held mostly configurations that learned nothing.  Dead
trials scored 0.0003-0.0016 there, chance matches that ranked them above learning ones; with the rungs
and TPE ranking scores under 0.01 by training loss (automl.sweep.rung_score; ``--reuse-random`` of that
run, 28 min): 0.926 / 0.281 (at epoch 20) / 0.769 (at epoch 64), met on 2 of 3, median 0.30 of random
search's epochs.  Seed 3 (``--seeds 3``, 74 min): random search 0.948 (at its epoch 214 of 216; 0.928 at a
third), ASHA + TPE 0.940 within 72 epochs: not met, by 0.008, while ahead of random search at a third.
Over seeds 0-3, met on 2 of 4 (median "never"); ASHA ahead at a third of the epochs on 3 of 4.
TPE's start-up at 4 random draws instead of 10 (``--asha-trials 40``, :func:`startup_trials`; same random
searches, 34 min): met on seeds 0 (epoch 51) and 1 (epoch 40), missed seeds 2 and 3 far below (0.317 and
0.318): 2 of 4 again, so the product keeps its start-up rule.
Seed 4 (``--seeds 4``, 33 min): random search 0.454 (at its epoch 57 of 191: one trial's loss went
non-finite at epoch 2), ASHA + TPE 0.537, reaching 0.454 at epoch 18 (0.09).  Over seeds 0-4: met on 3 of 5,
median 0.30 of random search's epochs: the goal is met on the median (against the epochs random search
spent until its own best, the report's stricter line, the median is 0.45: not met).  The two misses
(seeds 0 and 3) ended 0.015 and 0.008 under random search's best, within one standard deviation of a
trained configuration's score from epoch to epoch (0.014 for the best curve: sweep_search_ceiling.py's
evaluation noise), which random search's best, a maximum over all its epochs, sits about one deviation above.
A third of TPE's proposals after its start-up drawn at random (BOHB's random fraction; tried on a branch,
not adopted; same random searches, 37 min for seeds 0-3): seeds 1 and 2 as before (epochs 20 and 64), seeds
0 and 3 far below (0.686 and 0.629, against 0.926 and 0.940): at best 3 of 5, so not worth it.
``--search-val-images`` scores every sweep on more validation images, for less of that noise; random
searches must then be run again (a record or --reuse-random folder scored on another count is refused).
"""
from __future__ import annotations

import json
import math
import shlex
import statistics
import threading
from datetime import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from sweep_harness import (METRIC, ROOT, SIZE, VAL_IMAGES, EpochSeen, SweepRun, load, one_class,  # noqa: E402
                           run_sweep_command, write_task)
from automl.sweep.schedulers import hyperband_rungs, most_halvings  # noqa: E402
from tests.learning.synthetic_shapes import write_shapes_dataset  # noqa: E402

ASHA_SEED_OFFSET = 1000
RANDOM_RECORD = "random_record.json"   # in --workdir: each seed's random-search numbers, for --random-record
# Part 2's space: two influential knobs over several decades, log scale, up to 1e-1: too low learns
# nothing within the budget, too high makes AdamW unstable, so the settings matter and a few epochs tell
# good from bad.
SEARCHED = ["train.optim.lr", "train.optim.lr_backbone"]
HIGHEST_LR = 1e-1


def search_ranges(decades: int) -> Dict[str, dict]:
    """Both knobs over ``decades`` decades below HIGHEST_LR, log scale.  At 4 (the recorded curves') about a
    quarter of lr and half of lr_backbone train well (val_mAP50 0.75-0.87 at 27 epochs), so random search's
    8 draws nearly always hold one good pair and its best lands on a flat top that only evaluation noise
    orders; at 7 (``--decades 7``) good pairs should be about 1 in 18 by those curves (measured: 2 of the 16
    draws of seeds 0 and 1), as when a user does not know the scale."""
    low = HIGHEST_LR / 10 ** decades
    return {name: {"low": low, "high": HIGHEST_LR, "log": True} for name in SEARCHED}


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sweep seeds of part 2")
    parser.add_argument("--random-trials", type=int, default=8)
    parser.add_argument("--max-epochs", type=int, default=9)
    parser.add_argument("--asha-trials", type=int, default=0,
                        help="ASHA's --max-trials (0: as many grace-period probes as the epoch budget holds)")
    parser.add_argument("--decades", type=int, default=4,
                        help=f"search lr and lr_backbone over this many decades below {HIGHEST_LR:g}, log scale")
    parser.add_argument("--search-images", type=int, default=192)
    parser.add_argument("--search-val-images", type=int, default=VAL_IMAGES,
                        help="part 2's validation images: every score, and so random search's best (a maximum "
                             "over all its epochs), carries evaluation noise that shrinks as this grows")
    parser.add_argument("--search-batch", type=int, default=4,
                        help="part 2's batch size: 4 gives 48 steps an epoch at 192 images, enough for one "
                             "epoch to tell a good learning rate from a bad one")
    parser.add_argument("--grace-period", type=int, default=1, help="ASHA's grace period in part 2 (epochs)")
    parser.add_argument("--early-stopping", choices=("asha", "hyperband", "bohb"), default="asha",
                        help="the --algorithm set against random search (hyperband and bohb derive their rungs "
                             "from --max-epochs and --grace-period; give them --asha-trials, e.g. 9 at grace 3: one "
                             "successive-halving bracket that fits a third of random search's epochs)")
    parser.add_argument("--asha-budget-fraction", type=float, default=1.0,
                        help="stop ASHA at this fraction of random search's epochs (1/3 settles the goal and "
                             "saves the rest: a seed that has not reached random's best by then has missed it)")
    parser.add_argument("--reuse-random", type=Path, default=None, metavar="WORKDIR",
                        help="take each seed's random search from an earlier run's --workdir (its seedN_random "
                             "folder) instead of running it again: random search does not involve the scheduler, "
                             "and CPU training is deterministic, so only a trainer change calls for a new run")
    parser.add_argument("--random-record", type=Path, default=None, metavar="JSON",
                        help="each seed's random-search numbers (best, epoch_of_best, epochs, best_at_third) from "
                             "an earlier run's random_record.json, for seeds with no --reuse-random folder: the "
                             "run writes one into --workdir; CPU training is deterministic, so random search's "
                             "numbers do not change while the trainer does not")
    parser.add_argument("--side-by-side", action="store_true",
                        help="run each seed's random and ASHA sweeps at the same time (4 trials at once: for 4+ "
                             "cores); the epoch counts do not change, only the wall time, and ASHA then runs to "
                             "the full budget instead of stopping at random search's best")


def make_quick(args) -> None:
    args.random_trials, args.max_epochs, args.search_images, args.grace_period = 2, 2, 32, 1
    args.seeds = args.seeds[:1] if args.seeds != [0, 1, 2] else [0]


def earlier_run(root: Path) -> Optional[SweepRun]:
    """A finished sweep read back from its folder: every trial's epochs in the order its status.json logged
    them (one-second resolution; an epoch takes ~15 s, so concurrent trials' epochs keep their order)."""
    epochs = []
    for status in sorted((root / "results" / "automl" / "trials").glob("*/train/status.json")):
        for line in status.read_text().splitlines():
            record = json.loads(line)
            if record.get("status") == "RUNNING" and record.get("kpi"):
                when = datetime.strptime(f"{record['date']} {record['time']}", "%m/%d/%Y %H:%M:%S").timestamp()
                epochs.append((when, status.parts[-3], int(record["epoch"]), float(record["kpi"][METRIC])))
    if not epochs:
        return None
    epochs.sort()
    started, ended = epochs[0][0], epochs[-1][0]
    return SweepRun(command=["(read back from", str(root), ")"], root=root, started=started, ended=ended,
                    returncode=0, epochs=[EpochSeen(when - started, trial, epoch, value)
                                          for when, trial, epoch, value in epochs])


def val_images_of(workdir: Path) -> int:
    """How many validation images an earlier part-2 run's sweeps were scored on (its search_data/val.json)."""
    return len(json.loads((workdir / "search_data" / "val.json").read_text())["images"])


def best_so_far(epochs: List[EpochSeen]) -> List[float]:
    """best_so_far[k - 1]: the best METRIC among the first k epochs the sweep completed (0 before any)."""
    curve, best = [], 0.0
    for seen in sorted(epochs, key=lambda e: e.seconds):
        if seen.value is not None and math.isfinite(seen.value):
            best = max(best, seen.value)
        curve.append(best)
    return curve


def random_summary(run: SweepRun) -> Optional[Dict[str, float]]:
    """What part 2 needs of a random search (and keeps in RANDOM_RECORD): its best, the epoch it came at,
    its epochs, its best within a third of them, its wall time.  None when it completed no epoch."""
    curve = best_so_far(run.epochs)
    if not curve:
        return None
    return {"best": curve[-1], "epoch_of_best": epochs_to_reach(curve, curve[-1]), "epochs": len(curve),
            "best_at_third": curve[max(1, len(curve) // 3) - 1], "wall": run.wall}


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
    asha_budget = budget if args.side_by_side else max(1, math.ceil(budget * args.asha_budget_fraction))
    asha_trials = args.asha_trials or max(args.random_trials, math.ceil(budget / args.grace_period))
    if args.early_stopping == "asha":
        arm = f"ASHA (grace {args.grace_period}, reduction 3)"
    else:
        first = hyperband_rungs(args.max_epochs, 3, most_halvings(args.max_epochs, 3, args.grace_period))
        arm = f"{args.early_stopping} (reduction 3, grace {args.grace_period}: first bracket's rungs at epochs {first})"
    print(f"\n== (2) {args.early_stopping} + TPE vs random search at equal epochs: random {args.random_trials} trials "
          f"x {args.max_epochs} epochs = {budget} epochs; {arm} up to {asha_trials} trials, "
          f"stopped at {asha_budget} epochs{'' if args.side_by_side else ' or once it reaches random search best'}; "
          f"lr and lr_backbone over [{HIGHEST_LR / 10 ** args.decades:g}, {HIGHEST_LR:g}] (log); "
          f"{args.search_images} train and {args.search_val_images} val images, batch {args.search_batch}, "
          f"2 trials at a time"
          f"{' (random and ASHA side by side)' if args.side_by_side else ''} ==", flush=True)
    data = one_class(write_shapes_dataset(work / "search_data", args.search_images, args.search_val_images,
                                          size=SIZE, seed=0))
    common = ["--max-epochs", str(args.max_epochs), "--max-concurrent", "2", "--cpus-per-trial", "1",
              "--max-retries", "0"]
    runs = {}

    def sweep(seed: int, name: str, flags: List[str], **stop) -> None:
        root = work / f"seed{seed}_{name}"
        spec = write_task(root, data, epochs=args.max_epochs, searched=SEARCHED, ranges=search_ranges(args.decades),
                          train_seed=1234 + seed, num_classes=1, batch_size=args.search_batch)
        # Independent draws: with one seed, TPE's random start-up would propose random search's very configs.
        sweep_seed = seed if name == "random" else seed + ASHA_SEED_OFFSET
        run = run_sweep_command(spec, flags + common + ["--seed", str(sweep_seed)], **stop)
        runs[seed, name] = run
        statuses = [row["status"] for row in run.trials()]
        # Trials still running at the budget stop stay 'running' in trials.csv.
        counts = ", ".join(f"{statuses.count(s)} {'cut at the stop' if s in ('running', 'interrupted') else s}"
                           for s in sorted(set(statuses)))
        best = max((e.value for e in run.epochs if e.value is not None), default=math.nan)
        print(f"  seed {seed} {name:<6}: {len(run.epochs)} epochs, {len(statuses)} trials ({counts}), best "
              f"{METRIC} {best:.3f}, {run.wall:.0f}s (load {load()})", flush=True)
        if seed == args.seeds[0]:
            print(f"    command: cd {root} && PYTHONPATH={ROOT} {shlex.join(run.command)}")

    def asha_search(seed: int, target: Optional[float]) -> None:
        sweep(seed, "asha", ["--algorithm", args.early_stopping, "--max-trials", str(asha_trials), "--grace-period",
                             str(args.grace_period), "--reduction-factor", "3"],
              budget_epochs=asha_budget, stop_at_value=target if target else None)

    def random_search(seed: int) -> None:
        sweep(seed, "random", ["--algorithm", "random", "--max-trials", str(args.random_trials)])

    if args.side_by_side:
        for seed in args.seeds:
            both = [threading.Thread(target=random_search, args=(seed,)),
                    threading.Thread(target=asha_search, args=(seed, None))]
            for thread in both:
                thread.start()
            for thread in both:
                thread.join()
    results: List[SeedResult] = []
    recorded = json.loads(args.random_record.read_text()) if args.random_record else {}
    record: Dict[str, Dict] = {}
    for seed in args.seeds:
        if (seed, "random") not in runs and args.reuse_random is not None:
            earlier = earlier_run(args.reuse_random / f"seed{seed}_random")
            if earlier is not None:
                scored_on = val_images_of(args.reuse_random)
                if scored_on != args.search_val_images:
                    raise SystemExit(f"{args.reuse_random}: its random searches were scored on {scored_on} val "
                                     f"images, not --search-val-images {args.search_val_images}")
                runs[seed, "random"] = earlier
                print(f"  seed {seed} random: {len(earlier.epochs)} epochs read back from {earlier.root}", flush=True)
        if (seed, "random") not in runs and str(seed) not in recorded:
            # Random search first: ASHA's run then stops as soon as it reaches random's best (the epochs it
            # would spend after that cannot change the ratios).  Seed by seed, so a long run that is cut
            # short still has whole seeds.
            random_search(seed)
        if (seed, "random") in runs:
            random = random_summary(runs[seed, "random"])
            record[str(seed)] = random and dict(random, val_images=args.search_val_images)
            (work / RANDOM_RECORD).write_text(json.dumps(record, indent=1) + "\n")
        elif str(seed) in recorded:
            random = recorded[str(seed)]
            if random.get("val_images", VAL_IMAGES) != args.search_val_images:
                raise SystemExit(f"{args.random_record}: seed {seed}'s random search was scored on "
                                 f"{random.get('val_images', VAL_IMAGES)} val images, not --search-val-images "
                                 f"{args.search_val_images}")
            print(f"  seed {seed} random: best {random['best']:.3f} of {random['epochs']} epochs, from "
                  f"{args.random_record}", flush=True)
        else:
            random = None
        if not random:
            print(f"  seed {seed}: random search completed no epoch; skipped")
            continue
        target = random["best"]
        if (seed, "asha") not in runs:
            asha_search(seed, target)
        asha_curve = best_so_far(runs[seed, "asha"].epochs)[:asha_budget]   # epochs past it are not counted
        if not asha_curve:
            print(f"  seed {seed}: ASHA completed no epoch; skipped")
            continue
        third = max(1, random["epochs"] // 3)
        asha_statuses = [row["status"] for row in runs[seed, "asha"].trials()]
        results.append(SeedResult(
            seed=seed, random_total=random["epochs"], random_best=target,
            random_epochs_to_best=random["epoch_of_best"],
            asha_total=len(asha_curve), asha_best=asha_curve[-1],
            asha_epochs_to_target=epochs_to_reach(asha_curve, target) if target > 0 else None,
            random_at_third=random["best_at_third"], asha_at_third=asha_curve[min(third, len(asha_curve)) - 1],
            asha_trials=f"{len(asha_statuses)} ({asha_statuses.count('pruned')} pruned)",
            random_wall=random.get("wall", math.nan), asha_wall=runs[seed, "asha"].wall))
        reached = results[-1].asha_epochs_to_target
        when = (f"not within its {len(asha_curve)} epochs" if reached is None
                else f"at epoch {reached} ({reached / random['epochs']:.2f} of random search's {random['epochs']})")
        print(f"  seed {seed}: ASHA reached random search's best {target:.3f} {when}: "
              f"{'met' if reached is not None and reached <= random['epochs'] / 3 else 'not met'}", flush=True)
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


