"""Who proposes the next configuration: an Optuna sampler inside Ray Tune's OptunaSearch.

Two things differ from using ``OptunaSearch`` as it comes:

- the sampler is built here, seeded, with its settings written out (Optuna
  5 changed TPE's defaults; a sweep must not change with them);
- a trial that the scheduler stopped early is told to Optuna as PRUNED, not
  as COMPLETE with its low-fidelity score (Ray's OptunaSearch does the latter,
  hpo_anchors.md 1.3): TPE would otherwise rank an epoch-1 mAP next to final ones.
  Its intermediate values are still reported, which TPE uses to order pruned trials.
"""
from __future__ import annotations

import itertools
from typing import Any, Dict, List, Optional

import optuna
from ray.tune.search.optuna import OptunaSearch

from search_spaces.optuna_space import INDEX_SUFFIX, QUANTILE_SUFFIX, define_by_run
from search_spaces.parameters import SearchSpace

from .settings import SweepSettings
from .trial import TIME_ATTR

GRID_POINTS = 3   # values per numeric parameter in a grid search


class SchedulerAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells scheduler-stopped trials as PRUNED.

    A trial that ends before ``max_epochs`` without an error was stopped by the
    scheduler (the trainer always runs its epochs to the end).
    """

    def __init__(self, *args, max_epochs: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_epochs = int(max_epochs)
        self.pruned_trials: List[str] = []

    # HyperBand for BOHB pauses and resumes trials through the searcher; a paused trial simply stays
    # RUNNING in the study (its intermediate values keep coming when it resumes).
    def on_pause(self, trial_id: str) -> None:
        pass

    def on_unpause(self, trial_id: str) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False):
        if (not error and result and trial_id in self._ot_trials and trial_id not in self._completed_trials
                and int(result.get(TIME_ATTR, self.max_epochs)) < self.max_epochs):
            self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            self.pruned_trials.append(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def build_sampler(settings: SweepSettings, space: SearchSpace) -> optuna.samplers.BaseSampler:
    seed = settings.seed
    if settings.algorithm == "random" or settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.algorithm == "grid":
        return optuna.samplers.GridSampler(grid_space(space), seed=seed)
    # A third of the budget explores at random before the model takes over (10 at most, Optuna's default).
    startup = max(2, min(10, settings.max_trials // 3))
    if settings.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, deterministic_objective=False)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True,
                                      n_ei_candidates=24)


def build_searcher(settings: SweepSettings, space: SearchSpace) -> SchedulerAwareOptunaSearch:
    return SchedulerAwareOptunaSearch(
        space=define_by_run(space), metric=settings.metric, mode=settings.mode,
        sampler=build_sampler(settings, space), seed=settings.seed, max_epochs=settings.max_epochs)


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
