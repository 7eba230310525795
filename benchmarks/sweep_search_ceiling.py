"""How far part 2's goal is within reach on its task, from random search's recorded learning curves.

bench_sweep.py part 2 asks ASHA + TPE to reach random search's best val_mAP50 within a third of random
search's epochs.  Whether any scheduler can depends on the task: on how well a trial's score at a rung
ranks it for the end (successive halving's premise), and on how high random search's best of a few draws
already sits.  This reads the random searches an earlier part-2 run left (every trial trained to the end:
full learning curves) and, pooling the seeds' curves, draws sweeps from them (bootstrap, seeded):

- the rank correlation (Spearman) of each rung's score with the trial's best score;
- how often the best of ``n`` random draws reaches random search's best of ``--random-trials`` (the
  oracle: a scheduler that knows each draw's end at no cost);
- how often synchronous successive halving over ``n`` random draws (the top 1/eta of each rung by its
  score goes on; SHA's decisions are ASHA's with every rung full) reaches it, and the epochs it spends;
- the evaluation noise under the target: the best curves' plateau (mean and standard deviation of their
  last third) and how far their best epoch sits above it.  The target is a maximum over every epoch of
  random search, so it rides on that noise: a sweep that trains the same configuration can miss it by
  a standard deviation or so with the same model quality.

No sampler learns here (TPE's proposals would have to be trained to be scored), and nothing trains:
seconds, from the curves alone.

    python benchmarks/sweep_search_ceiling.py WORKDIR [--random-trials 8] [--eta 3] [--grace-period 1]
        [--draws 20000] [--save-curves FILE]

WORKDIR: a part-2 --workdir (its seed*_random folders; a --reuse-random folder of links works too), or a
JSON file of curves that ``--save-curves FILE`` wrote (benchmarks/sweep_search_replay.py reads both).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from automl.sweep.rung_score import NOISE_FLOOR, rung_result  # noqa: E402

METRIC = "val_mAP50"
LOSS = "loss"   # the epoch's mean training loss, which the rungs rank scores under their noise floor by


def load_runs(source: Path) -> List[Tuple[List[float], Optional[List[float]]]]:
    """(METRIC, training loss) per epoch of every random-search trial that trained the full budget, from a
    part-2 --workdir or a JSON file that :func:`save_curves` wrote; the losses are None where the source
    has none (a curves file saved before they were kept)."""
    if source.is_file():
        saved = json.loads(source.read_text())
        runs = list(zip(saved["curves"], saved.get("losses") or [None] * len(saved["curves"])))
    else:
        runs = []
        for metrics in sorted(source.glob("seed*_random/results/automl/trials/*/train/metrics.jsonl")):
            epochs = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            runs.append(([float(epoch[METRIC]) for epoch in epochs], [float(epoch[LOSS]) for epoch in epochs]))
    budget = max((len(values) for values, _ in runs), default=0)
    return [(values, losses) for values, losses in runs if len(values) == budget]


def save_curves(runs: List[Tuple[List[float], Optional[List[float]]]], path: Path, source: Path) -> None:
    """The curves (and their losses) as JSON: a few kilobytes that stand for hours of training (part 2's
    random searches)."""
    losses = [loss for _, loss in runs]
    path.write_text(json.dumps({"metric": METRIC, "from": str(source), "curves": [values for values, _ in runs],
                                "losses": losses if all(loss is not None for loss in losses) else None},
                               indent=None) + "\n")


def rungs_of(budget: int, eta: int, grace: int = 1) -> List[int]:
    """ASHA's rungs: grace, grace * eta, grace * eta^2, ... up to the budget (always last)."""
    rungs, epoch = [], grace
    while epoch < budget:
        rungs.append(epoch)
        epoch *= eta
    return rungs + [budget]


def halving_epochs(n: int, rungs: Sequence[int], eta: int) -> int:
    """The epochs synchronous successive halving over n draws trains in all."""
    spent, trained, size = 0, 0, n
    for rung in rungs:
        spent += (rung - trained) * size
        trained, size = rung, max(1, size // eta)
    return spent


def largest_bracket_within(epochs: int, rungs: Sequence[int], eta: int) -> int:
    """The most draws successive halving can take within ``epochs`` (at least one)."""
    return max([n for n in range(1, epochs + 1) if halving_epochs(n, rungs, eta) <= epochs] or [1])


def halving_order(draws: Sequence[List[float]], rungs: Sequence[int], eta: int) -> Iterator[float]:
    """Every score synchronous successive halving over ``draws`` sees, in the order it trains the epochs:
    each rung's trials train to it (in draw order), then the top 1/eta of the rung go on."""
    pool, trained = list(draws), 0
    for rung in rungs:
        for curve in pool:
            yield from curve[trained:rung]
        trained = rung
        pool = sorted(pool, key=lambda curve: -curve[rung - 1])[:max(1, len(pool) // eta)]


def successive_halving(draws: Sequence[List[float]], rungs: Sequence[int], eta: int) -> Tuple[float, int]:
    """The best score SHA sees (at any epoch, as part 2 counts it), and the epochs the whole bracket trains."""
    scores = list(halving_order(draws, rungs, eta))
    return max(scores), len(scores)


def plateau(curve: Sequence[float]) -> Tuple[float, float]:
    """Mean and standard deviation of a curve's last third: where a trained configuration's score settles,
    and how much one evaluation of it moves from epoch to epoch (on part 2's validation set: 32 images by default)."""
    tail = curve[-max(2, len(curve) // 3):]
    return statistics.mean(tail), statistics.stdev(tail)


def curve_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments this and sweep_search_replay.py share: the curves, random search's size, the rungs."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--random-trials", type=int, default=8, help="random search's trials (part 2's default)")
    parser.add_argument("--eta", type=int, default=3, help="reduction factor")
    parser.add_argument("--grace-period", type=int, default=1, help="the first rung (part 2: 1 epoch)")
    return parser


def main() -> None:
    parser = curve_arguments(__doc__)
    parser.add_argument("--draws", type=int, default=20000, help="bootstrap sweeps per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-curves", type=Path, default=None, metavar="FILE",
                        help="also write the full curves to FILE (JSON), for later runs of this and the replay")
    args = parser.parse_args()

    runs = load_runs(args.workdir)
    curves = [values for values, _ in runs]
    if args.save_curves:
        save_curves(runs, args.save_curves, args.workdir)
    if len(curves) < 2:
        raise SystemExit(f"{args.workdir}: fewer than 2 full random-search curves under seed*_random/")
    budget = len(curves[0])
    rungs = rungs_of(budget, args.eta, args.grace_period)
    goal_epochs = args.random_trials * budget / 3
    finals = [max(curve) for curve in curves]
    print(f"{len(curves)} full {budget}-epoch curves from {args.workdir}; rungs {rungs}; random search "
          f"{args.random_trials} x {budget} = {args.random_trials * budget} epochs, a third = {goal_epochs:.0f}")
    with_losses = all(losses is not None for _, losses in runs)
    for rung in rungs[:-1]:
        rho = spearmanr([curve[rung - 1] for curve in curves], finals).correlation
        scored = ""
        if with_losses:   # as the product's rungs rank them: scores under the noise floor by loss
            ranked = [rung_result({METRIC: values[rung - 1], LOSS: losses[rung - 1]}, METRIC, "max")[METRIC]
                      for values, losses in runs]
            scored = (f"; as the rungs score it (by loss under {NOISE_FLOOR:g}): "
                      f"{spearmanr(ranked, finals).correlation:.2f}")
        print(f"  rank correlation of the epoch-{rung} score with the best: {rho:.2f}{scored}")
    print(f"  evaluation noise, the {min(4, len(curves))} best curves (plateau: their last third):")
    for curve in sorted(curves, key=max, reverse=True)[:4]:
        mean, spread = plateau(curve)
        print(f"    best {max(curve):.3f} | plateau {mean:.3f} +- {spread:.3f} | best - plateau "
              f"{(max(curve) - mean) / spread if spread else 0:.1f} sd")

    rng = random.Random(args.seed)
    # Bracket sizes around the largest whose halving fits a third of random search's epochs.
    fits = largest_bracket_within(int(goal_epochs), rungs, args.eta)
    sizes = sorted({max(args.eta, round(fits * factor)) for factor in (0.6, 0.8, 0.9, 1.0, 1.1)})
    print(f"  {'draws':>5} | {'oracle':>6} | {'SHA':>5} {'epochs':>6}")
    for n in sizes:
        oracle = halving = spent = 0
        for _ in range(args.draws):
            target = max(max(rng.choice(curves)) for _ in range(args.random_trials))
            draws = [rng.choice(curves) for _ in range(n)]
            oracle += max(max(curve) for curve in draws) >= target
            best, epochs = successive_halving(draws, rungs, args.eta)
            halving += best >= target
            spent += epochs
        print(f"  {n:>5} | {oracle / args.draws:>6.2f} | {halving / args.draws:>5.2f} {spent / args.draws:>6.0f}")
    print(f"P(reaching random search's best): per seed; SHA's rows within {goal_epochs:.0f} epochs meet the "
          f"budget (ASHA spends more: it promotes before a rung is full, and keeps starting new draws)")


if __name__ == "__main__":
    main()
