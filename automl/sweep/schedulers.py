"""Who stops, pauses or perturbs running trials: Ray Tune's schedulers, counted in epochs."""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Dict, List, Optional, Set

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import (ASHAScheduler, FIFOScheduler, HyperBandForBOHB, HyperBandScheduler,
                                 PopulationBasedTraining, TrialScheduler)
from ray.tune.schedulers.async_hyperband import _Bracket as _AsyncBracket
from ray.tune.schedulers.hyperband import _Bracket

from search_spaces.parameters import SearchSpace

from .rung_score import rung_result
from .settings import SweepSettings
from .trial import RERUN_OF, TIME_ATTR

# Parameters PBT may perturb while a trial runs: those a resumed optimizer can take without retraining.
PERTURBABLE = ("train.optim.lr", "train.optim.lr_backbone", "train.optim.weight_decay")


def build_scheduler(settings: SweepSettings, space: SearchSpace) -> TrialScheduler:
    common = dict(time_attr=TIME_ATTR, metric=settings.metric, mode=settings.mode)
    algorithm = settings.algorithm
    if algorithm == "asha":
        # One bracket (the most aggressive: every trial may stop at the grace period); a trial that reaches
        # max_t ends there, as it would anyway.
        return PromotingASHA(**common, max_t=settings.max_epochs, grace_period=settings.grace_period,
                             reduction_factor=settings.reduction_factor, max_trials=settings.max_trials)
    if algorithm == "hyperband":
        return FullRungsHyperBand(**common, max_t=settings.max_epochs, reduction_factor=settings.reduction_factor,
                                  grace_period=settings.grace_period)
    if algorithm == "bohb":
        return FullRungsHyperBandForBOHB(**common, max_t=settings.max_epochs,
                                         reduction_factor=settings.reduction_factor, grace_period=settings.grace_period)
    if algorithm == "pbt":
        return PBTWithinBudget(
            settings.max_epochs, **common, perturbation_interval=max(1, settings.grace_period),
            hyperparam_mutations=pbt_mutations(space, settings.seed), quantile_fraction=0.25,
            resample_probability=0.25, perturbation_factors=(1.25, 0.8), synch=False)
    return FIFOScheduler()


class _PromotingBracket(_AsyncBracket):
    """Ray's ASHA bracket, with ASHA's own promotion rule (Li et al. 2020: a trial goes on from a rung only
    in the top 1/eta of it) where Ray lets a trial through a rung that holds too few results to compare.

    Ray continues any trial that reaches a rung with no result recorded there, whatever its score.

    - At the first rung those are the sampler's random start-up draws, most of them bad on a wide space
      (a learning rate over four decades), each free pass costing max_t - grace epochs; and Optuna's TPE
      ranks every COMPLETE trial above every PRUNED one, so a bad trial that ran to the end models a good
      configuration until a better one completes.  So nobody passes the first rung until
      ``reduction_factor`` trials (itself included) have reached it: the first ones stop there, and wait.
      Once the rung holds enough results, a waiting trial that ranks in its top 1/eta is handed to
      :attr:`requeue` (the sweep proposes its configuration again; training is deterministic, so the
      re-run reaches the rung with the same score and passes it by Ray's rule).  Without the re-run a
      sweep's best early draw could be lost for arriving first (measured: the best epoch-1 score of a
      27-epoch sweep, 0.054, beside the configuration random search won with).  A trial waits only
      while the sweep has trials left for the rung's other arrivals and every waiting trial's re-run
      (:attr:`trials_left`); near the end of a sweep, or with nobody to re-run it, Ray's rule stands.
      The re-run passes the first rung whatever arrived meanwhile (:attr:`promised`): it ranked in the
      top when it was asked back, and repeating its epochs should not lose it that place.
    - At a higher rung, the first arrival had won its comparison at the rung below, but possibly against
      few results: a trial at 0.001 beat three zeros at epoch 1 and was then first at epochs 3 and 9,
      and trained all 27 epochs at about 0 (a third of that sweep's epochs).  So the first arrival is
      checked again against the rung below as it stands now, and stops if it is no longer in its top
      1/eta *and* a trial that outranks it there is still running.  That trial will find the rung as
      empty as this one did (a stopped first arrival is not recorded), so the sweep's best running trial
      always gets through: a sweep still ends with a trial trained to max_t, as under Ray's rule.

    ``ended`` (trials no longer running) and ``trials_left`` (trials the sweep may still start) come from
    the scheduler; a bracket on its own assumes an endless sweep.
    """

    def __init__(self, min_t: int, max_t: int, *args, **kwargs):
        super().__init__(min_t, max_t, *args, **kwargs)
        self.max_t = max_t
        self.ended: Set[str] = set()
        self.waiting: Dict[str, float] = {}   # first-rung arrivals stopped for coming too early -> score
        self.requeue: Optional[Callable[[str], bool]] = None
        self.requeued: Set[str] = set()
        self.promised: Set[str] = set()   # re-runs of requeued trials: they pass the first rung
        self.trials_left: Callable[[], float] = lambda: math.inf

    def on_result(self, trial, cur_iter: int, cur_rew: Optional[float]) -> str:
        if trial.trial_id in self.requeued:   # its stop's final result, after the re-queue: not counted twice
            return TrialScheduler.STOP
        reached = self._rung_reached(trial.trial_id, cur_iter)
        if reached is None or cur_rew is None or self._rungs[reached][0] >= self.max_t:
            return super().on_result(trial, cur_iter, cur_rew)   # no new rung, or the budget: ends anyway
        recorded = self._rungs[reached][1]
        if reached == len(self._rungs) - 1:   # the first rung (rungs are kept highest first)
            promised = trial.trial_id in self.promised
            too_early = (self.requeue is not None and len(recorded) + 1 < self.rf and not promised
                         and self.trials_left() >= self.rf + len(self.waiting))
            action = super().on_result(trial, cur_iter, cur_rew)
            if promised:
                action = TrialScheduler.CONTINUE
            elif too_early:
                self.waiting[trial.trial_id] = cur_rew
                action = TrialScheduler.STOP
            self._requeue_the_top_of(recorded)
            return action
        if not recorded and self._outranked_by_a_running_trial(trial.trial_id, self._rungs[reached + 1][1]):
            return TrialScheduler.STOP
        return super().on_result(trial, cur_iter, cur_rew)

    def _rung_reached(self, trial_id: str, cur_iter: int) -> Optional[int]:
        """Index in ``_rungs`` of the rung this result is the trial's first at (Ray's own walk), or None."""
        for index, (milestone, recorded) in enumerate(self._rungs):
            if cur_iter >= milestone and trial_id not in recorded:
                return index
        return None

    def _outranked_by_a_running_trial(self, trial_id: str, below: Dict[str, float]) -> bool:
        own = below.get(trial_id)
        if own is None or own >= self.cutoff(below):
            return False
        return any(score > own and other not in self.ended for other, score in below.items() if other != trial_id)

    def _requeue_the_top_of(self, recorded: Dict[str, float]) -> None:
        """Hand waiting trials now in the rung's top 1/eta to :attr:`requeue` (once each; their results
        leave the rung, which their re-runs rejoin).  The top as Ray's rule draws it for an arrival (a score
        not below the cutoff): when results tie at the cutoff (scores a trainer reported no loss with: see
        :mod:`.rung_score`), later ones pass, and one that arrived first must not be the only one stopped
        for good (measured: the demo lost the configuration it had won with, 0.54, that way)."""
        if self.requeue is None or len(recorded) < self.rf:
            return
        cutoff = self.cutoff(recorded)
        for trial_id, score in list(self.waiting.items()):
            if score >= cutoff and self.trials_left() >= 1 and self.requeue(trial_id):
                del self.waiting[trial_id]
                self.requeued.add(trial_id)
                recorded.pop(trial_id, None)


class PromotingASHA(ASHAScheduler):
    """Ray's ASHAScheduler whose brackets are :class:`_PromotingBracket`.

    One bracket (the most aggressive: every trial may stop at the grace period); a trial that reaches max_t
    ends there.  :meth:`requeue_with` connects the searcher that proposes a waiting trial's configuration
    again; a re-run is one of the sweep's ``max_trials``.  Rungs rank trials by :func:`.rung_score.rung_result`
    (those below its noise floor by their training loss).
    """

    def __init__(self, *, grace_period: int, max_t: int, reduction_factor: float, max_trials: int, **kwargs):
        super().__init__(grace_period=grace_period, max_t=max_t, reduction_factor=reduction_factor,
                         brackets=1, stop_last_trials=True, **kwargs)
        self.max_trials = max_trials
        self._added: Set[str] = set()
        self._reruns_owed = 0   # re-runs asked of the searcher and not added yet (known by their #rerun_of mark)
        bracket = _PromotingBracket(grace_period, max_t, reduction_factor, 0, stop_last_trials=True)
        bracket.trials_left = lambda: self.max_trials - len(self._added) - self._reruns_owed
        self._brackets = [bracket]

    def requeue_with(self, requeue: Callable[[str], bool]) -> None:
        def owed(trial_id: str) -> bool:
            asked = requeue(trial_id)
            self._reruns_owed += int(asked)
            return asked

        self._brackets[0].requeue = owed

    def get_state(self) -> Dict[str, Any]:
        """What the scheduler knows of the sweep so far: each rung's results, the waiting, re-queued, ended
        and added trials.  Ray saves a searcher's state for ``--resume`` but not a scheduler's
        (:class:`SchedulerState` saves this one with the experiment's)."""
        bracket = self._brackets[0]
        return {"rungs": [[milestone, dict(recorded)] for milestone, recorded in bracket._rungs],
                "waiting": dict(bracket.waiting), "requeued": sorted(bracket.requeued),
                "promised": sorted(bracket.promised),
                "ended": sorted(bracket.ended), "added": sorted(self._added), "reruns_owed": self._reruns_owed}

    def set_state(self, state: Dict[str, Any]) -> None:
        bracket = self._brackets[0]
        milestones = [milestone for milestone, _ in bracket._rungs]
        if [milestone for milestone, _ in state["rungs"]] != milestones:
            raise ValueError(f"the saved ASHA state has rungs at epochs {[m for m, _ in state['rungs']]}, "
                             f"this sweep at {milestones}")
        for (_, recorded), (_, saved) in zip(bracket._rungs, state["rungs"]):
            recorded.clear()
            recorded.update(saved)
        bracket.waiting = dict(state["waiting"])
        bracket.requeued = set(state["requeued"])
        bracket.promised = set(state.get("promised", ()))
        bracket.ended = set(state["ended"])
        self._added = set(state["added"])
        self._reruns_owed = int(state["reruns_owed"])

    def on_trial_add(self, tune_controller, trial) -> None:
        """A new trial, one Ray retries after an error (``on_trial_error`` first, then added again), or on
        ``--resume`` every trial of the saved experiment, those that had ended too."""
        super().on_trial_add(tune_controller, trial)
        if getattr(trial, "status", None) in (Trial.TERMINATED, Trial.ERROR):
            self._ended(trial)
        else:
            self._brackets[0].ended.discard(trial.trial_id)
        if trial.trial_id not in self._added:
            self._added.add(trial.trial_id)
            if RERUN_OF in (getattr(trial, "config", None) or {}):
                self._brackets[0].promised.add(trial.trial_id)
                self._reruns_owed = max(0, self._reruns_owed - 1)

    def _ended(self, trial) -> None:
        self._brackets[0].ended.add(trial.trial_id)

    def on_trial_result(self, tune_controller, trial, result: Dict[str, Any]) -> str:
        action = super().on_trial_result(tune_controller, trial, rung_result(result, self._metric, self._mode))
        if action == TrialScheduler.STOP:
            self._ended(trial)
        return action

    def on_trial_complete(self, tune_controller, trial, result: Dict[str, Any]) -> None:
        self._ended(trial)
        super().on_trial_complete(tune_controller, trial, rung_result(result, self._metric, self._mode))

    def on_trial_error(self, tune_controller, trial) -> None:
        self._ended(trial)
        super().on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._ended(trial)
        super().on_trial_remove(tune_controller, trial)


class SchedulerState(Callback):
    """Saves a scheduler's ``get_state()`` with the experiment's state and gives it back on ``--resume``.

    Ray saves the trials', the searcher's and the callbacks' state together, every few seconds; its
    schedulers keep theirs in memory only, so a resumed ASHA sweep would start with empty rungs (and its
    waiting trials would never run again).  Ray pickles this callback and the scheduler in one object
    (``tuner.pkl``), so after a restore it still holds the scheduler the sweep runs with.
    """

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def get_state(self) -> Optional[Dict]:
        return {"scheduler": self.scheduler.get_state()}

    def set_state(self, state: Dict) -> None:
        self.scheduler.set_state(state["scheduler"])


def hyperband_rungs(max_t: int, eta: int, s: int) -> List[int]:
    """The epochs at which bracket ``s`` (``s`` halvings) compares its trials: R * eta^(i - s) rounded up,
    the last one always ``max_t`` (HyperBand, Li et al. 2018).

    Ray's own brackets start at int(R * eta^-s) and multiply by eta, so with R=3, eta=2 a bracket's
    last rung is 2 and its survivors are stopped one epoch short of the budget (and reported as pruned).
    """
    return [min(max_t, max(1, math.ceil(max_t * eta ** (i - s) - 1e-9))) for i in range(s + 1)]


def most_halvings(max_t: int, eta: int, grace: int = 1) -> int:
    """HyperBand's s_max: the halvings of its most aggressive bracket.  Ray's round(log_eta(max_t)), fewer
    while that bracket's first rung would come before the grace period (HyperBand's minimum resource,
    Li et al. 2018: on a task whose first epoch ranks trials poorly, the first rung comes later)."""
    halvings = int(round(math.log(max_t) / math.log(eta)))
    while halvings > 0 and hyperband_rungs(max_t, eta, halvings)[0] < grace:
        halvings -= 1
    return halvings


def largest_bracket(max_t: int, eta: int, grace: int = 1) -> int:
    """Trials in HyperBand's most aggressive bracket: they must all be live (running, pending or paused)
    before its first halving, so the sweep may not hold fewer live trials than this."""
    return int(math.ceil(eta ** most_halvings(max_t, eta, grace)))


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

    def _init_rungs(self, grace_period: int) -> None:
        # Ray counts brackets from its own s_max (round(log_eta(max_t))); with a grace period, fewer.
        self._s_max_1 = most_halvings(self._max_t_attr, self._eta, grace_period) + 1
        self._get_r0 = lambda s: hyperband_rungs(self._max_t_attr, self._eta, self._aggressiveness(s))[0]

    def on_trial_result(self, tune_controller, trial, result: Dict[str, Any]) -> str:
        # A bracket halves by these scores: trials below the noise floor in the order of their training loss.
        return super().on_trial_result(tune_controller, trial, rung_result(result, self._metric, self._mode))

    def on_trial_add(self, tune_controller, trial) -> None:
        """On ``--resume`` Ray adds back every trial of the saved experiment, the finished ones too.  A
        bracket halves only once all its trials reached the rung, and a finished trial reports nothing
        again: in a bracket it would be waited for forever (measured: the resumed driver spun at 100 %
        CPU with paused trials left).  So finished trials stay out; the unfinished ones, which Ray
        restarts as PENDING from their last checkpoint, fill new brackets (Ray does not save a
        scheduler's brackets, so the halvings before the kill are not replayed)."""
        if trial.status in (Trial.TERMINATED, Trial.ERROR):
            return
        super().on_trial_add(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller, allow_recurse: bool = True) -> Optional[Trial]:
        """HyperBandForBOHB's choice, for HyperBand too: when no trial runs and none is ready, a bracket
        whose trials all wait is halved rather than waited on.  Ray's HyperBand halves only on a
        result, and a trial ahead of its bracket's rung (one that trained past it before a ``--resume``)
        waits paused for a result nobody will report."""
        return HyperBandForBOHB.choose_trial_to_run(self, tune_controller, allow_recurse)


class FullRungsHyperBand(_FullRungsMixin, HyperBandScheduler):
    def __init__(self, *args, grace_period: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_rungs(grace_period)


class FullRungsHyperBandForBOHB(_FullRungsMixin, HyperBandForBOHB):
    _bracket_order_reversed = False

    def __init__(self, *args, grace_period: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_rungs(grace_period)


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
