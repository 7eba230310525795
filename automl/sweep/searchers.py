"""Who proposes the next configuration: an Optuna sampler inside Ray Tune's OptunaSearch.

Three things differ from using ``OptunaSearch`` as it comes:

- the sampler is built here, seeded, with its settings written out (Optuna
  5 changed TPE's defaults; a sweep must not change with them);
- a trial that the scheduler stopped early is told to Optuna as PRUNED, not
  as COMPLETE with its low-fidelity score (Ray's OptunaSearch does the latter,
  hpo_anchors.md 1.3): TPE would otherwise rank an epoch-1 mAP next to final ones.
  Its intermediate values are still reported, which TPE uses to order pruned trials: as
  the rungs score them (:mod:`.rung_score`: near-zero scores ordered by training loss),
  so the sampler learns from stopped trials in the order the scheduler ranked them;
- a trial that failed is told as PRUNED too, so that TPE learns from it
  (FAILED trials are invisible to it).

Latency (``--objective map50-latency``, see :mod:`.latency`): every trial's
``latency_ms`` is set as an Optuna user attribute before it is told.  With a
budget each trial also gets the constraint ``latency_ms - budget`` (Optuna 5's
``Trial.set_constraint``, which replaced the deprecated ``constraints_func``;
TPE, GP and NSGA-II read it, feasible when <= 0), and a trial stopped for being
over the budget is told COMPLETE at the worst value, infeasible; without a budget
the study has two objectives (metric, latency_ms) and a multi-objective
sampler (multi-objective TPE, or NSGA-II with ``--sampler nsga2``).  With a budget,
a proposal at least as large in every latency knob as a trial measured over the
budget (:func:`.latency_space.at_least_as_slow`; the very same model: measured over
twice) is told infeasible at once and another is asked for: TPE's "good" set is the least-infeasible trials until one
fits, so it would otherwise keep proposing the sizes it has just seen fail.
"""
from __future__ import annotations

import itertools
import logging
import math
from typing import Any, Dict, List, Optional, Tuple

import optuna
from ray.tune.search.optuna import OptunaSearch

from search_spaces.optuna_space import INDEX_SUFFIX, QUANTILE_SUFFIX, define_by_run, without_helper_parameters
from search_spaces.parameters import SearchSpace

from .rung_score import rung_result
from .settings import EARLY_STOPPING_ALGORITHMS, LATENCY_METRIC, SweepSettings
from .trial import OVER_BUDGET, RERUN_OF, TIME_ATTR

logger = logging.getLogger(__name__)

GRID_POINTS = 3   # values per numeric parameter in a grid search
LATENCY_ATTR = "latency_ms"   # Optuna user attribute a trial's latency is kept in
REQUEUED_ATTR = "rerun_of"   # user attribute of a proposal that repeats a trial the scheduler asked back
INFERRED_ATTR = "over_budget_like"   # user attribute of a proposal skipped as no faster than this over-budget trial
MAX_SKIPPED_PROPOSALS = 32    # then the proposal runs anyway (its own measurement stops it)


def latency_violation(latency_ms: float, budget_ms: float) -> float:
    """The constraint value Optuna gets: feasible (<= 0) when the model fits the budget."""
    return float(latency_ms) - float(budget_ms)


class SchedulerAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells scheduler-stopped trials as PRUNED.

    A trial that ends before ``max_epochs`` without an error was stopped by the
    scheduler (the trainer always runs its epochs to the end).
    """

    def __init__(self, *args, max_epochs: int, latency_budget_ms: Optional[float] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_epochs = int(max_epochs)
        self.latency_budget_ms = latency_budget_ms
        self.pruned_trials: List[str] = []
        self.suggested: Dict[str, Dict[str, Any]] = {}          # trial id -> its sampled values
        self.over_budget: Dict[str, Tuple[Dict[str, Any], float]] = {}   # trial id -> (values, latency_ms)
        self.skipped_proposals = 0

    def suggest(self, trial_id: str) -> Optional[Dict]:
        config = super().suggest(trial_id)
        for _ in range(MAX_SKIPPED_PROPOSALS if self.latency_budget_ms is not None and config else 0):
            slower = self._no_faster_than_over_budget(without_helper_parameters(config))
            if slower is None:
                break
            self._tell_skipped(self._ot_trials.pop(trial_id), *slower)
            config = super().suggest(trial_id)
        if config:
            self.suggested[trial_id] = without_helper_parameters(config)
            rerun_of = self._ot_trials[trial_id].user_attrs.get(REQUEUED_ATTR)
            if rerun_of:   # the scheduler and trials.csv need to know it is one
                config[RERUN_OF] = rerun_of
        return config

    def _no_faster_than_over_budget(self, values: Dict[str, Any]) -> Optional[Tuple[str, float]]:
        """(trial id, latency) of a trial measured over the budget whose model ``values`` cannot beat: one
        larger in some knob, or the very same model measured over the budget twice.  Once is not enough
        for the same model: a measurement beside a training trial can land over a budget it fits, and
        the smallest model searched would then never get a second chance."""
        from .latency_space import at_least_as_slow

        same: List[Tuple[str, float]] = []
        for trial_id, (reference, latency) in getattr(self, "over_budget", {}).items():
            if at_least_as_slow(values, reference):
                if not at_least_as_slow(reference, values):
                    return trial_id, latency
                same.append((trial_id, latency))
        return min(same, key=lambda found: found[1]) if len(same) >= 2 else None

    def _tell_skipped(self, ot_trial, reference_id: str, latency: float) -> None:
        """Infeasible by inference: its latency is at least the reference's (a lower bound of the violation)."""
        ot_trial.set_user_attr(LATENCY_ATTR, float(latency))
        ot_trial.set_user_attr(INFERRED_ATTR, reference_id)
        ot_trial.set_constraint(LATENCY_ATTR, latency_violation(latency, self.latency_budget_ms))
        self._tell(ot_trial, _worst(self.mode))
        self.skipped_proposals += 1

    def _tell(self, ot_trial, *args, **kwargs) -> None:
        """``study.tell`` as Ray's OptunaSearch guards it: a failure is a warning, not the sweep's end.
        GridSampler calls ``Study.stop()`` once every grid point is told, which raises outside
        ``Study.optimize``; a grid sweep whose last point failed (told PRUNED) got there."""
        try:
            self._ot_study.tell(ot_trial, *args, **kwargs)
        except Exception as error:   # noqa: BLE001 - Ray's own guard around the same call
            logger.warning("Optuna did not take trial %s's result: %s", ot_trial.number, error)

    def requeue(self, trial_id: str) -> bool:
        """Propose ``trial_id``'s configuration again, next (Optuna's ``enqueue_trial``): for a scheduler
        that stopped the trial before its rung could compare it (:class:`.schedulers.PromotingASHA`).
        False when the trial is not this searcher's."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            return False
        self._ot_study.enqueue_trial(ot_trial.params, user_attrs={REQUEUED_ATTR: trial_id})
        return True

    def on_trial_result(self, trial_id: str, result: Dict) -> None:
        """Each epoch's score goes to Optuna as an intermediate value, as a rung scores it.  TPE orders
        PRUNED trials by their last one: a sweep whose stopped trials all scored chance matches (0.0003 to
        0.0016 val_mAP50 at epoch 1 on a wide learning-rate range) would otherwise model the noise, and
        the next proposals would follow whichever dead configuration happened to match a box."""
        if not isinstance(self.metric, list):
            result = rung_result(result, self.metric, self.mode)
        super().on_trial_result(trial_id, result)

    # HyperBand for BOHB pauses and resumes trials through the searcher; a paused trial simply stays
    # RUNNING in the study (its intermediate values keep coming when it resumes).
    def on_pause(self, trial_id: str) -> None:
        pass

    def on_unpause(self, trial_id: str) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False):
        known = trial_id in self._ot_trials and trial_id not in self._completed_trials
        if known and result and result.get(LATENCY_METRIC) is not None:
            trial = self._ot_trials[trial_id]
            trial.set_user_attr(LATENCY_ATTR, float(result[LATENCY_METRIC]))
            if self.latency_budget_ms is not None:   # before tell: the samplers read it from the told trial
                trial.set_constraint(LATENCY_ATTR, latency_violation(result[LATENCY_METRIC], self.latency_budget_ms))
        if not error and result and known and result.get(OVER_BUDGET):
            # Never trained: COMPLETE at the worst value, and infeasible through the constraint.
            if trial_id in getattr(self, "suggested", {}) and result.get(LATENCY_METRIC) is not None:
                self.over_budget[trial_id] = (self.suggested[trial_id], float(result[LATENCY_METRIC]))
            self._tell(self._ot_trials[trial_id], _worst(self.mode))
            self._completed_trials.add(trial_id)
            return
        if error and known and not isinstance(self.metric, list):
            # Failed after its retries (a non-finite loss, out of memory, a crash): PRUNED with the epochs it
            # reported, which ranks it below every trial that got further.  As FAILED, TPE would ignore it
            # and propose the same region again: a benchmark sweep's next proposal after lr 0.0876 had
            # diverged was lr 0.0879.  (Two objectives keep FAILED: Optuna orders pruned trials by one.)
            self._tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        if (not error and result and known and not isinstance(self.metric, list)
                and int(result.get(TIME_ATTR, self.max_epochs)) < self.max_epochs):
            self._tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            self.pruned_trials.append(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def build_sampler(settings: SweepSettings, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The seeded sampler (TPE, GP and NSGA-II use a latency budget's constraint; random and grid
    sampling ignore it: the budget still stops and disqualifies trials)."""
    seed = settings.seed
    if settings.algorithm == "random" or settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.algorithm == "grid":
        return optuna.samplers.GridSampler(grid_space(space), seed=seed)
    startup = startup_trials(settings.max_trials)
    if settings.sampler == "nsga2":
        # Generations of a few trials: a sweep has tens of trials, not NSGA-II's default 50 per generation.
        return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, settings.max_trials // 3)), seed=seed)
    if settings.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, deterministic_objective=False)
    # Multi-objective TPE when the study has two objectives: the same settings.
    # multivariate: one joint density over the parameters, because they interact (lr and lr_backbone are
    #   good only together; independent densities propose good-lr x bad-backbone-lr pairs).
    # constant_liar: trials still running count as bad outcomes, so trials started together (up to
    #   max_concurrent) are not near-copies of one proposal.  Only when every trial runs to the end: under
    #   ASHA / HyperBand / BOHB the trials that run long are the promoted ones, the best seen so far, and
    #   the lie would push proposals away from them for as long as they train (tests/sweep/
    #   test_tpe_search.py measures it).  Without it TPE just ignores running trials.
    # n_ei_candidates: draws from the "good" density scored per proposal (Optuna's 24).
    # Not passed: prior_weight, consider_endpoints, consider_magic_clip, gamma, weights are deprecated
    # since Optuna 4.9 and fixed to their defaults in 6.0 (prior on with weight 1, no endpoints, the
    # "good" set the top ceil(10 %) of finished trials); passing them only warns.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                      constant_liar=settings.algorithm not in EARLY_STOPPING_ALGORITHMS,
                                      n_ei_candidates=24)


def startup_trials(max_trials: int) -> int:
    """Random draws before TPE (or GP) models the results: 4, a tenth of a long sweep, at most 10
    (Optuna's default) and at most half the trials.

    Each start-up trial is a blind draw, and TPE (its prior keeps the densities defined from one result
    on) can already steer from a handful of results in the few dimensions a sweep searches.  Optuna's
    10 would make a default 8-trial sweep pure random search, and spend 10 of an ASHA sweep's cheap
    probes blind; a third of the trials (this function's former rule) did that for 30 probes.  Trials
    the scheduler stopped count too: Optuna counts COMPLETE and PRUNED trials.
    """
    return max(1, min(max(4, math.ceil(max_trials / 10)), 10, max_trials // 2))


def build_searcher(settings: SweepSettings, space: SearchSpace) -> SchedulerAwareOptunaSearch:
    """One metric, or [metric, latency_ms] with modes [max, min] for a two-objective sweep."""
    return SchedulerAwareOptunaSearch(
        space=define_by_run(space), metric=settings.metrics, mode=settings.modes,
        sampler=build_sampler(settings, space), seed=settings.seed, max_epochs=settings.max_epochs,
        latency_budget_ms=settings.latency_budget_ms)


def _worst(mode: str) -> float:
    """The worst value of a single objective (an over-budget trial is only ever single-objective)."""
    return 0.0 if mode == "max" else float("inf")


def grid_space(space: SearchSpace) -> Dict[str, List[Any]]:
    """Every parameter's grid: choices as they are, numbers at ``GRID_POINTS`` points (log-spaced when
    the parameter is), helper parameters (weighted choices, excluded values) at their mapped points."""
    values = dict(space.base_values)
    grid: Dict[str, List[Any]] = {}
    for parameter in space.parameters:
        if not parameter.is_active(values):
            continue
        if parameter.choices is not None:
            choices, weights = parameter.allowed_choices(values)
            if weights:   # the define-by-run function maps a quantile to a weighted choice
                total, edges = sum(weights), list(itertools.accumulate(weights))
                grid[parameter.name + QUANTILE_SUFFIX] = [
                    (edge - weight / 2) / total for edge, weight in zip(edges, weights)]
            else:
                grid[parameter.name] = list(choices)
            values[parameter.name] = choices[0]
            continue
        low, high = parameter.bounds(values)
        if parameter.excluded_values and parameter.type != "float":
            grid[parameter.name + INDEX_SUFFIX] = _points(0, int(high) - int(low) - len(parameter.excluded_values),
                                                          False, "int")
        else:
            grid[parameter.name] = _points(low, high, parameter.log, parameter.type)
        values[parameter.name] = grid.get(parameter.name, [low])[0]
    return grid


def _points(low: float, high: float, log: bool, kind: str) -> List[Any]:
    import numpy as np

    if kind == "int":
        points = np.geomspace(max(low, 1), high, GRID_POINTS) if log and low > 0 else np.linspace(low, high,
                                                                                                   GRID_POINTS)
        return sorted({int(round(p)) for p in points})
    points = np.geomspace(low, high, GRID_POINTS) if log and low > 0 else np.linspace(low, high, GRID_POINTS)
    return [float(p) for p in points]


def grid_size(space: SearchSpace) -> int:
    size = 1
    for options in grid_space(space).values():
        size *= len(options)
    return size
