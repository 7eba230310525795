"""Who stops, pauses or perturbs running trials: Ray Tune's schedulers, counted in epochs."""
from __future__ import annotations

import math
import random
from typing import Any, Dict, List, Optional

from ray.tune.schedulers import (ASHAScheduler, FIFOScheduler, HyperBandForBOHB, HyperBandScheduler,
                                 PopulationBasedTraining, TrialScheduler)
from ray.tune.schedulers.async_hyperband import _Bracket as _AsyncBracket
from ray.tune.schedulers.hyperband import _Bracket

from search_spaces.parameters import SearchSpace

from .settings import SweepSettings
from .trial import TIME_ATTR

# Parameters PBT may perturb while a trial runs: those a resumed optimizer can take without retraining.
PERTURBABLE = ("train.optim.lr", "train.optim.lr_backbone", "train.optim.weight_decay")


def build_scheduler(settings: SweepSettings, space: SearchSpace) -> TrialScheduler:
    common = dict(time_attr=TIME_ATTR, metric=settings.metric, mode=settings.mode)
    algorithm = settings.algorithm
    if algorithm == "asha":
        # One bracket (the most aggressive: every trial may stop at the grace period); a trial that reaches
        # max_t ends there, as it would anyway.
        return FirstRungWaitsASHA(**common, max_t=settings.max_epochs, grace_period=settings.grace_period,
                                  reduction_factor=settings.reduction_factor, brackets=1, stop_last_trials=True)
    if algorithm == "hyperband":
        return FullRungsHyperBand(**common, max_t=settings.max_epochs, reduction_factor=settings.reduction_factor)
    if algorithm == "bohb":
        return FullRungsHyperBandForBOHB(**common, max_t=settings.max_epochs,
                                         reduction_factor=settings.reduction_factor)
    if algorithm == "pbt":
        return PBTWithinBudget(
            settings.max_epochs, **common, perturbation_interval=max(1, settings.grace_period),
            hyperparam_mutations=pbt_mutations(space, settings.seed), quantile_fraction=0.25,
            resample_probability=0.25, perturbation_factors=(1.25, 0.8), synch=False)
    return FIFOScheduler()


class _FirstRungWaitsBracket(_AsyncBracket):
    """Ray's ASHA bracket, except that a trial passes the first rung only once ``reduction_factor`` trials
    (itself included) have reached it: the first ``reduction_factor - 1`` arrivals stop there.

    Ray continues any trial that reaches a rung with no result to compare against, so the sweep's first
    trial always runs to max_t, and the second whenever it beats the first.  At the first rung those
    trials are the sampler's random start-up draws, most of them bad on a wide space (a learning rate over
    four decades), and each free pass costs max_t - grace epochs.  Worse, Optuna's TPE ranks every
    COMPLETE trial above every PRUNED one, so a bad trial that ran to the end becomes the model of a good
    configuration until a better one completes.  Stopping them costs grace epochs each, and their
    intermediate values still reach the sampler (told as pruned).  This is the promotion rule of ASHA's
    paper (Li et al. 2020: promote only from the top 1/eta of a rung, so nobody from a rung holding fewer
    than eta results) at the rung the start-up draws crowd; at higher rungs every arrival already won a
    comparison, and Ray's rule stands.
    """

    def __init__(self, min_t: int, max_t: int, *args, **kwargs):
        super().__init__(min_t, max_t, *args, **kwargs)
        self.max_t = max_t

    def on_result(self, trial, cur_iter: int, cur_rew: Optional[float]) -> str:
        first_milestone, recorded = self._rungs[-1]   # rungs are kept highest first
        # A first rung at max_t (grace period = max epochs) stops nobody early: trials there are done anyway.
        crowded_first_rung = (first_milestone < self.max_t and cur_rew is not None and cur_iter >= first_milestone
                              and trial.trial_id not in recorded and len(recorded) + 1 < self.rf)
        action = super().on_result(trial, cur_iter, cur_rew)
        return TrialScheduler.STOP if crowded_first_rung else action


class FirstRungWaitsASHA(ASHAScheduler):
    """Ray's ASHAScheduler whose brackets are :class:`_FirstRungWaitsBracket`."""

    def __init__(self, *, grace_period: int, max_t: int, reduction_factor: float, brackets: int = 1,
                 stop_last_trials: bool = True, **kwargs):
        super().__init__(grace_period=grace_period, max_t=max_t, reduction_factor=reduction_factor,
                         brackets=brackets, stop_last_trials=stop_last_trials, **kwargs)
        self._brackets = [_FirstRungWaitsBracket(grace_period, max_t, reduction_factor, s,
                                                 stop_last_trials=stop_last_trials) for s in range(brackets)]


def hyperband_rungs(max_t: int, eta: int, s: int) -> List[int]:
    """The epochs at which bracket ``s`` (``s`` halvings) compares its trials: R * eta^(i - s) rounded up,
    the last one always ``max_t`` (HyperBand, Li et al. 2018).

    Ray's own brackets start at int(R * eta^-s) and multiply by eta, so with R=3, eta=2 a bracket's
    last rung is 2 and its survivors are stopped one epoch short of the budget (and reported as pruned).
    """
    return [min(max_t, max(1, math.ceil(max_t * eta ** (i - s) - 1e-9))) for i in range(s + 1)]


def largest_bracket(max_t: int, eta: int) -> int:
    """Trials in HyperBand's most aggressive bracket: they must all be live (running, pending or paused)
    before its first halving, so the sweep may not hold fewer live trials than this."""
    s_max_1 = int(round(math.log(max_t) / math.log(eta))) + 1
    return int(math.ceil(eta ** (s_max_1 - 1)))


class _FullRungsBracket(_Bracket):
    """A Ray bracket whose rungs are :func:`hyperband_rungs`: survivors of the last halving reach max_t."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rungs = hyperband_rungs(int(self._max_t_attr), int(self._eta), int(self._halves))

    def successive_halving(self, metric, metric_op):
        halves_before = self._halves
        good, bad = super().successive_halving(metric, metric_op)
        if self._halves < halves_before:   # moved up one rung
            self._r = self._cumul_r = self._rungs[len(self._rungs) - 1 - self._halves]
        return good, bad


class _FullRungsMixin:
    """Ray's HyperBand with :func:`hyperband_rungs` and the most aggressive bracket first.

    Ray's HyperBandScheduler fills bracket s=0 (no early stopping at all) first, so a sweep of a handful of
    trials never stops anything; the paper runs s = s_max down to 0, and so does Ray's HyperBandForBOHB
    (it asks for brackets by aggressiveness already: ``_bracket_order_reversed`` False).
    """

    _bracket_order_reversed = True

    def _aggressiveness(self, s: int) -> int:
        return self._s_max_1 - 1 - s if self._bracket_order_reversed else s

    def _create_bracket(self, s):
        halvings = self._aggressiveness(s)
        n0 = int(math.ceil(self._s_max_1 / (halvings + 1) * self._eta ** halvings))
        rungs = hyperband_rungs(self._max_t_attr, self._eta, halvings)
        return _FullRungsBracket(time_attr=self._time_attr, max_trials=n0, init_t_attr=rungs[0],
                                 max_t_attr=self._max_t_attr, eta=self._eta, s=halvings,
                                 stop_last_trials=self._stop_last_trials)

    def _init_rungs(self) -> None:
        self._get_r0 = lambda s: hyperband_rungs(self._max_t_attr, self._eta, self._aggressiveness(s))[0]


class FullRungsHyperBand(_FullRungsMixin, HyperBandScheduler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_rungs()


class FullRungsHyperBandForBOHB(_FullRungsMixin, HyperBandForBOHB):
    _bracket_order_reversed = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_rungs()


class PBTWithinBudget(PopulationBasedTraining):
    """Ray's asynchronous PBT, except that no trial is perturbed into having nothing left to train.

    Ray knows no epoch budget: a trial reporting its last epoch could still be paused and restarted from a
    donor, and a trial could clone a donor that has already trained its last epoch.  Either restart costs a
    trainer start-up and trains nothing (the trial's folder then holds no epoch of its own), so neither
    happens here; the trial continues and ends, as it would without PBT.
    """

    def __init__(self, max_epochs: int, **kwargs):
        super().__init__(**kwargs)
        self.max_epochs = max_epochs

    def on_trial_result(self, tune_controller, trial, result: Dict[str, Any]) -> str:
        if result.get(self._time_attr, 0) >= self.max_epochs:
            return TrialScheduler.CONTINUE   # its last epoch: it ends now
        return super().on_trial_result(tune_controller, trial, result)

    def _exploit(self, tune_controller, trial, trial_to_clone) -> None:
        donor = self._trial_state[trial_to_clone].last_result or {}
        if donor.get(self._time_attr, 0) >= self.max_epochs:
            return   # the donor's checkpoint is its last epoch: nothing would be left to train from it
        super()._exploit(tune_controller, trial, trial_to_clone)


def pbt_mutations(space: SearchSpace, seed: int) -> Dict[str, Any]:
    """Resampling functions for the perturbable parameters the space searches (PBT multiplies them by
    its factors, or draws afresh with ``resample_probability``)."""
    rng = random.Random(seed)
    mutations: Dict[str, Any] = {}
    for parameter in space.parameters:
        if parameter.name not in PERTURBABLE or parameter.choices is not None:
            continue
        low, high = parameter.bounds(space.base_values)
        if parameter.log:
            mutations[parameter.name] = (lambda lo=low, hi=high: math.exp(rng.uniform(math.log(lo), math.log(hi))))
        else:
            mutations[parameter.name] = (lambda lo=low, hi=high: rng.uniform(lo, hi))
    return mutations
