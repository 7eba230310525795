"""Part 2's search goal replayed on recorded learning curves: which scheduler rule could meet it, in seconds.

bench_sweep.py part 2 trains every sweep for real (about 36 min a seed at 27 epochs), and one run per
seed is noisy: ASHA's decisions follow the order in which two concurrent trials' results arrive.  This
replays many sweeps on the full learning curves of part 2's random searches (every trial trained to the
end, so any prefix of a curve is what a scheduler would have seen):

- each replayed sweep draws random search's best of ``--random-trials`` curves (the target) and then
  proposes curves at random from the same pool (no sampler: TPE's proposals would have to be trained);
- ``--workers`` trials run at once; an epoch takes one time unit (+-``--jitter``) and a trial's start
  ``--start-cost`` more, so concurrent trials' results arrive in a realistic, shuffled order;
- epochs are counted as they complete, stopped trials' included, as part 2 counts them; a sweep meets
  the goal when some epoch reaches the target within a third of random search's epochs.

The rules replayed:

- ``tao-automl asha``: the product's scheduler itself (automl.sweep.schedulers, ``--algorithm asha``),
  re-runs of waiting trials included (a re-run replays the same curve: training is deterministic), and
  the recorded training losses where the curves carry them (its rungs rank scores under their noise
  floor by loss);
- ``Ray ASHA``: Ray Tune's ASHAScheduler with the same rungs;
- ``paper ASHA``: Li et al. 2020's rule with pauses: a trial waits at each rung, a free worker first
  resumes the best waiting trial in its rung's top 1/eta, else starts a new one (once no trial is left
  to start, a rung nobody can reach any more lets its top 1/eta, at least one, go on);
- ``full-rung ASHA``: the same, except that nobody leaves rung k before it holds eta^(K-k) results
  (K rungs below the budget: the sizes of one successive-halving bracket ending in one trial), or the
  sweep has nobody else to bring there;
- ``SHA(n)``: synchronous successive halving over n draws, for n = eta^K and for the most draws whose
  bracket fits a third of the epochs (HyperBand's most aggressive bracket, which ``--algorithm hyperband
  --max-trials n`` runs first), with ``--workers`` idle at the last rungs.

    python benchmarks/sweep_search_replay.py WORKDIR [--grace-period 1] [--trials 216] [--sweeps 2000]
    python benchmarks/sweep_search_replay.py benchmarks/data/part2_random_curves.json --grace-period 3
    python benchmarks/sweep_search_replay.py benchmarks/data/part2_wide_random_curves.json

WORKDIR: a part-2 --workdir (its seed*_random folders), or a JSON file of curves
(benchmarks/sweep_search_ceiling.py --save-curves).
"""
from __future__ import annotations

import heapq
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ray.tune.schedulers import ASHAScheduler, TrialScheduler  # noqa: E402

from automl.sweep.schedulers import build_scheduler  # noqa: E402
from automl.sweep.settings import SweepSettings  # noqa: E402
from automl.sweep.trial import RERUN_OF, TIME_ATTR  # noqa: E402
from sweep_search_ceiling import (LOSS, METRIC, curve_arguments, halving_order, largest_bracket_within,  # noqa: E402
                                  load_runs, rungs_of)

Curve = List[float]


class _Trial:
    """What a Ray scheduler reads of a trial."""

    def __init__(self, trial_id: str, rerun_of: str = ""):
        self.trial_id, self.status = trial_id, "RUNNING"
        self.config = {RERUN_OF: rerun_of} if rerun_of else {}


class _Clock:
    """The replayed sweep's workers: an event queue of epoch completions, and the epoch count."""

    def __init__(self, rng: random.Random, jitter: float, start_cost: float, budget: int, target: float):
        self.rng, self.jitter, self.start_cost, self.budget, self.target = rng, jitter, start_cost, budget, target
        self.now, self.epochs, self.reached = 0.0, 0, None
        self.events: List = []

    def start(self, trial_id: str, first: bool = True) -> None:
        cost = self.rng.uniform(1 - self.jitter, 1 + self.jitter) + (self.start_cost if first else 0.0)
        heapq.heappush(self.events, (self.now + cost, trial_id))

    def next(self) -> str:
        self.now, trial_id = heapq.heappop(self.events)
        return trial_id

    def count(self, value: float) -> bool:
        """One epoch completed with ``value``; True once the sweep is settled (reached, or out of budget)."""
        self.epochs += 1
        if self.reached is None and value >= self.target:
            self.reached = self.epochs
        return self.reached is not None or self.epochs >= self.budget


def replay_ray_scheduler(scheduler, curves: Sequence[Curve], clock: _Clock, workers: int, trials: int,
                         max_t: int, requeue: bool, losses: Optional[Sequence[Curve]] = None) -> Optional[int]:
    """Drive a Ray Tune scheduler as Tune would: add, result, complete.  Returns epochs to the target.
    ``losses[i]``: curve i's training loss per epoch, reported with its scores (the product's rungs rank
    scores under their noise floor by it)."""
    queue: List[str] = []
    if requeue:
        scheduler.requeue_with(lambda trial_id: queue.append(trial_id) or True)
    curve_of: Dict[str, int] = {}   # trial -> the index of the curve it replays
    done: Dict[str, int] = {}
    started = 0
    while True:
        while len(done) < workers and started < trials:
            trial_id, rerun_of = f"t{started}", queue.pop(0) if queue else ""
            curve_of[trial_id] = curve_of[rerun_of] if rerun_of else clock.rng.randrange(len(curves))
            scheduler.on_trial_add(None, _Trial(trial_id, rerun_of))
            done[trial_id], started = 0, started + 1
            clock.start(trial_id)
        if not done:
            return clock.reached
        trial_id = clock.next()
        done[trial_id] += 1
        epoch, curve = done[trial_id], curve_of[trial_id]
        value = curves[curve][epoch - 1]
        if clock.count(value):
            return clock.reached
        result = {TIME_ATTR: epoch, METRIC: value}
        if losses is not None:
            result[LOSS] = losses[curve][epoch - 1]
        if scheduler.on_trial_result(None, _Trial(trial_id), result) == TrialScheduler.STOP or epoch >= max_t:
            scheduler.on_trial_complete(None, _Trial(trial_id), result)
            del done[trial_id]
        else:
            clock.start(trial_id, first=False)


def replay_pausing_asha(curves: Sequence[Curve], clock: _Clock, workers: int, trials: int, rungs: Sequence[int],
                        eta: int, fill: Callable[[int], int]) -> Optional[int]:
    """ASHA with pauses (Li et al. 2020, Algorithm 2): a trial stops at each rung and waits; a free worker
    resumes a waiting trial in the top 1/eta of its rung (highest rung first) once the rung holds
    ``fill(k)`` results, or else starts a new trial.  A rung nobody can reach any more (no trial left to
    start, none running below it, none waiting below it in a top) is full with what it holds: its top
    1/eta, at least one, go on (successive halving's last decisions, as in a bracket of fewer trials)."""
    scores: List[Dict[str, float]] = [dict() for _ in rungs[:-1]]   # rung k's results
    waiting: List[set] = [set() for _ in rungs[:-1]]
    curve_of: Dict[str, Curve] = {}
    done: Dict[str, int] = {}
    running: set = set()
    started = 0

    def promotable() -> Optional[str]:
        tops, closed = [], started >= trials
        for k in range(len(scores)):   # bottom-up: a rung closes once the rungs below it have
            closed = closed and not any(done[t] < rungs[k] for t in running)
            ranked = sorted(scores[k], key=lambda t: -scores[k][t])
            size = len(ranked) // eta if len(ranked) >= fill(k) else (max(1, len(ranked) // eta) if closed else 0)
            tops.append([t for t in ranked[:size] if t in waiting[k]])
            closed = closed and not tops[-1]
        for k in reversed(range(len(scores))):
            if tops[k]:
                waiting[k].discard(tops[k][0])
                return tops[k][0]
        return None

    while True:
        while len(running) < workers:
            trial_id = promotable()
            if trial_id is None and started < trials:
                trial_id, started = f"t{started}", started + 1
                curve_of[trial_id], done[trial_id] = clock.rng.choice(curves), 0
            if trial_id is None:
                break
            running.add(trial_id)
            clock.start(trial_id)   # a start, or a restart from the rung's checkpoint
        if not running:
            return clock.reached
        trial_id = clock.next()
        done[trial_id] += 1
        epoch = done[trial_id]
        if clock.count(curve_of[trial_id][epoch - 1]):
            return clock.reached
        if epoch in rungs[:-1]:
            k = rungs.index(epoch)
            scores[k][trial_id] = curve_of[trial_id][epoch - 1]
            waiting[k].add(trial_id)
            running.discard(trial_id)
        elif epoch >= rungs[-1]:
            running.discard(trial_id)
        else:
            clock.start(trial_id, first=False)


def replay_successive_halving(curves: Sequence[Curve], clock: _Clock, n: int, rungs: Sequence[int],
                              eta: int) -> Optional[int]:
    """Synchronous SHA over n draws (sweep_search_ceiling.halving_order), its epochs counted in order."""
    for score in halving_order([clock.rng.choice(curves) for _ in range(n)], rungs, eta):
        if clock.count(score):
            break
    return clock.reached


def main() -> None:
    parser = curve_arguments(__doc__)
    parser.add_argument("--workers", type=int, default=2, help="trials at once (part 2: 2)")
    parser.add_argument("--trials", type=int, default=0,
                        help="the ASHA rules' --max-trials (0: part 2's default, one grace-period probe per epoch)")
    parser.add_argument("--sweeps", type=int, default=2000, help="replayed sweeps per rule")
    parser.add_argument("--jitter", type=float, default=0.15, help="an epoch's time, 1 +- this")
    parser.add_argument("--start-cost", type=float, default=0.3, help="a trial's start-up, in epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    runs = load_runs(args.workdir)
    curves = [values for values, _ in runs]
    # The product's rungs rank scores under their noise floor by training loss: without the losses (an
    # older curves file) its rule replays on the scores alone.
    losses = [loss for _, loss in runs] if all(loss is not None for _, loss in runs) else None
    if len(curves) < 2:
        raise SystemExit(f"{args.workdir}: fewer than 2 full random-search curves")
    max_t = len(curves[0])
    rungs = rungs_of(max_t, args.eta, args.grace_period)
    total = args.random_trials * max_t
    goal = total // 3
    trials = args.trials or total
    settings = SweepSettings(results_dir=Path("unused"), algorithm="asha", max_trials=trials, max_epochs=max_t,
                             grace_period=rungs[0], reduction_factor=args.eta)
    below = len(rungs) - 1

    def full_rungs(k: int) -> int:
        return args.eta ** (below - k)

    rules = {
        "tao-automl asha": lambda clock: replay_ray_scheduler(
            build_scheduler(settings, space=None), curves, clock, args.workers, trials, max_t, requeue=True,
            losses=losses),
        "Ray ASHA": lambda clock: replay_ray_scheduler(
            ASHAScheduler(time_attr=TIME_ATTR, metric=METRIC, mode="max", max_t=max_t, grace_period=rungs[0],
                          reduction_factor=args.eta, brackets=1, stop_last_trials=True),
            curves, clock, args.workers, trials, max_t, requeue=False),
        "paper ASHA": lambda clock: replay_pausing_asha(curves, clock, args.workers, trials, rungs, args.eta,
                                                        fill=lambda k: args.eta),
        "full-rung ASHA": lambda clock: replay_pausing_asha(curves, clock, args.workers, trials, rungs, args.eta,
                                                            fill=full_rungs),
    }
    for n in sorted({args.eta ** below, largest_bracket_within(goal, rungs, args.eta)}):
        rules[f"SHA({n})"] = lambda clock, n=n: replay_successive_halving(curves, clock, n, rungs, args.eta)

    print(f"{len(curves)} full {max_t}-epoch curves {'with' if losses else 'without'} their losses from "
          f"{args.workdir}; rungs {rungs}; random search "
          f"{args.random_trials} x {max_t} = {total} epochs, the goal within {goal}; {args.workers} workers, "
          f"ASHA rules up to {trials} trials; {args.sweeps} replayed sweeps a rule")
    print(f"  {'rule':<16} | {'P(goal)':>7} | {'epochs to target: median':>24} {'p25':>5} {'p75':>5}")
    for name, replay in rules.items():
        rng = random.Random(args.seed)
        reached = []
        for _ in range(args.sweeps):
            target = max(max(rng.choice(curves)) for _ in range(args.random_trials))
            clock = _Clock(rng, args.jitter, args.start_cost, budget=total, target=target)
            epochs = replay(clock)
            reached.append(math.inf if epochs is None else epochs)
        met = sum(1 for e in reached if e <= goal) / len(reached)
        quartiles = statistics.quantiles(reached, n=4) if len(reached) > 1 else [reached[0]] * 3
        text = ["never" if math.isinf(q) else f"{q:.0f}" for q in quartiles]
        print(f"  {name:<16} | {met:>7.2f} | {text[1]:>24} {text[0]:>5} {text[2]:>5}", flush=True)


if __name__ == "__main__":
    main()
