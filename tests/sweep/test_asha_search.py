"""ASHA + TPE, the parts that decide how fast a sweep finds a good configuration (no Ray session needed).

- ASHA's first rung waits for reduction_factor arrivals before it lets anyone through (Ray lets the first
  arrival through unconditionally, and TPE then ranks that completed trial above every pruned one);
- TPE's random start-up is a handful of trials, not a third of the sweep or Optuna's 10;
- trials the scheduler stopped reach Optuna as PRUNED with their per-epoch values, and TPE steers by them;
- the trials ASHA promoted, still training, do not count as bad outcomes (no constant liar under ASHA).
"""
from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from ray.tune.schedulers import TrialScheduler

from automl.sweep.schedulers import build_scheduler
from automl.sweep.searchers import build_searcher, startup_trials
from automl.sweep.settings import SweepSettings
from automl.sweep.trial import TIME_ATTR


class _Trial:
    def __init__(self, trial_id: str):
        self.trial_id = trial_id


def _asha(max_epochs: int = 9, grace: int = 1, rf: int = 3):
    settings = SweepSettings(results_dir=Path("unused"), algorithm="asha", max_trials=20, max_epochs=max_epochs,
                             grace_period=grace, reduction_factor=rf)
    return build_scheduler(settings, space=None)._brackets[0]


def test_the_first_arrivals_at_asha_s_first_rung_stop_and_later_ones_pass_in_the_top_third():
    bracket = _asha()
    stop, go = TrialScheduler.STOP, TrialScheduler.CONTINUE
    # The first two arrivals (reduction factor 3) stop however good they are.
    assert [bracket.on_result(_Trial(t), 1, v) for t, v in (("a", 0.9), ("b", 0.5))] == [stop, stop]
    # From the third on, Ray's cutoff: the top third of the results recorded at the rung.
    assert bracket.on_result(_Trial("c"), 1, 0.2) == stop
    assert bracket.on_result(_Trial("d"), 1, 0.95) == go
    assert bracket.on_result(_Trial("e"), 1, 0.6) == stop


def test_asha_s_higher_rungs_keep_ray_s_rule_for_their_first_arrival():
    bracket = _asha()
    for t, v in (("a", 0.1), ("b", 0.2), ("c", 0.9)):
        bracket.on_result(_Trial(t), 1, v)
    # "c" won its first-rung comparison: at rung 3 it is the first arrival and goes on.
    assert bracket.on_result(_Trial("c"), 3, 0.4) == TrialScheduler.CONTINUE


def test_the_first_rung_waits_also_when_it_is_asha_s_only_rung():
    bracket = _asha(max_epochs=2, grace=1)   # reduction factor 3: one rung, at epoch 1
    assert [bracket.on_result(_Trial(t), 1, 0.9) for t in "ab"] == [TrialScheduler.STOP] * 2


def test_asha_with_the_grace_period_at_the_full_budget_stops_nobody_early():
    bracket = _asha(max_epochs=2, grace=2)
    assert bracket.on_result(_Trial("a"), 2, 0.1) == TrialScheduler.CONTINUE


@pytest.mark.parametrize("trials, startup", [(1, 1), (3, 1), (6, 3), (8, 4), (24, 4), (60, 6), (500, 10)])
def test_tpe_starts_modelling_after_a_handful_of_random_trials(trials, startup):
    assert startup_trials(trials) == startup


def _rtdetr_space():
    from automl.search_space import search_space_for
    from automl.skills import find_skill

    return search_space_for(find_skill("rtdetr"), {}, None)


def _distance_to_good_lr(config) -> float:
    return abs(math.log10(config["train.optim.lr"]) + 3.0)   # the made-up score peaks at lr 1e-3


def _pruned_sweep(algorithm: str, trials: int = 14):
    """Every trial stopped after one of three epochs with a made-up epoch-1 score peaking at lr 1e-3."""
    settings = SweepSettings(results_dir=Path("unused"), algorithm=algorithm, max_trials=trials, max_epochs=3,
                             seed=3)
    searcher = build_searcher(settings, _rtdetr_space())
    proposals = []
    for i in range(trials):
        config = searcher.suggest(f"t{i}")
        proposals.append(config)
        result = {"val_mAP50": 0.3 - 0.1 * _distance_to_good_lr(config), TIME_ATTR: 1, "training_iteration": 1}
        searcher.on_trial_result(f"t{i}", result)
        searcher.on_trial_complete(f"t{i}", result)
    return searcher, proposals


def test_trials_asha_stopped_reach_optuna_as_pruned_with_their_epoch_values():
    searcher, _ = _pruned_sweep("asha", trials=5)
    told = searcher._ot_study.get_trials(deepcopy=False)
    assert [t.state for t in told] == [optuna.trial.TrialState.PRUNED] * 5
    assert all(list(t.intermediate_values) == [1] for t in told)
    assert len(searcher.pruned_trials) == 5


def test_tpe_steers_by_pruned_trials_toward_the_learning_rate_their_epoch_values_favour():
    _, tpe = _pruned_sweep("asha")
    _, random = _pruned_sweep("random")
    after_startup = slice(startup_trials(14), None)
    tpe_distance = sum(map(_distance_to_good_lr, tpe[after_startup])) / len(tpe[after_startup])
    random_distance = sum(map(_distance_to_good_lr, random[after_startup])) / len(random[after_startup])
    # Without the pruned trials' values TPE would still be drawing at random (or modelling nothing).
    assert tpe_distance < 0.5 * random_distance, (tpe_distance, random_distance)


def _promoting_sweep(seed: int, liar: bool, trials: int = 24, runs_for: int = 6) -> float:
    """A made-up ASHA sweep: each proposal's epoch-1 score peaks at lr 1e-3; a score in the top third so far
    is promoted and keeps training (RUNNING in the study) while the next ``runs_for`` proposals are made.
    Returns the mean distance (in decades of lr) of TPE's own proposals to lr 1e-3."""
    settings = SweepSettings(results_dir=Path("unused"), algorithm="asha", max_trials=trials, max_epochs=9, seed=seed)
    searcher = build_searcher(settings, _rtdetr_space())
    if liar:   # the same sampler with the liar on, the comparison this test is about
        searcher._sampler._constant_liar = True
    running, scores, proposals = {}, [], []
    for i in range(trials):
        for trial_id, (until, score) in list(running.items()):
            if until <= i:
                searcher.on_trial_complete(trial_id, {"val_mAP50": 2 * score, TIME_ATTR: 9})
                del running[trial_id]
        config = searcher.suggest(f"t{i}")
        proposals.append(config)
        score = 0.3 - 0.1 * _distance_to_good_lr(config)
        result = {"val_mAP50": score, TIME_ATTR: 1, "training_iteration": 1}
        searcher.on_trial_result(f"t{i}", result)
        scores.append(score)
        if len(scores) >= 3 and score >= sorted(scores, reverse=True)[len(scores) // 3]:
            running[f"t{i}"] = (i + runs_for, score)
        else:
            searcher.on_trial_complete(f"t{i}", result)
    own = proposals[startup_trials(trials):]
    return sum(map(_distance_to_good_lr, own)) / len(own)


def test_tpe_under_asha_keeps_proposing_near_the_promoted_trials_while_they_train():
    assert build_searcher(SweepSettings(results_dir=Path("unused"), algorithm="asha"),
                          _rtdetr_space())._sampler._constant_liar is False
    ours = [_promoting_sweep(seed, liar=False) for seed in range(4)]
    liar = [_promoting_sweep(seed, liar=True) for seed in range(4)]
    # The liar counts the promoted (best) trials as failures for as long as they train.
    assert all(o < lie for o, lie in zip(ours, liar)) and sum(ours) < 0.9 * sum(liar), (ours, liar)
