"""TPE inside an ASHA sweep: what the searcher is told and what it proposes (no Ray session needed).

- TPE's random start-up is a handful of trials, not a third of the sweep or Optuna's 10;
- trials the scheduler stopped reach Optuna as PRUNED with their per-epoch values (near-zero scores as
  the rungs score them, by training loss), and TPE steers by them;
- a waiting trial's configuration is the next proposal, and trials.csv and MLflow name the trial a re-run
  repeats;
- the trials ASHA promoted, still training, do not count as bad outcomes (no constant liar under ASHA).
"""
from __future__ import annotations

import csv
import math
import random
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from automl.sweep.rung_score import NOISE_FLOOR
from automl.sweep.searchers import build_searcher, startup_trials
from automl.sweep.settings import SweepSettings
from automl.sweep.trial import RERUN_OF, TIME_ATTR
from search_spaces.optuna_space import without_helper_parameters


@pytest.mark.parametrize("trials, startup", [(1, 1), (3, 1), (6, 3), (8, 4), (24, 4), (60, 6), (500, 10)])
def test_tpe_starts_modelling_after_a_handful_of_random_trials(trials, startup):
    assert startup_trials(trials) == startup


def _rtdetr_space():
    from automl.search_space import search_space_for
    from automl.skills import find_skill

    return search_space_for(find_skill("rtdetr"), {}, None)


def _distance_to_good_lr(config) -> float:
    return abs(math.log10(config["train.optim.lr"]) + 3.0)   # the made-up score peaks at lr 1e-3


def _score_peaking_at_good_lr(config) -> dict:
    return {"val_mAP50": 0.3 - 0.1 * _distance_to_good_lr(config)}


def _pruned_sweep(algorithm: str, trials: int = 14, metrics=_score_peaking_at_good_lr):
    """Every trial stopped after one of three epochs with made-up epoch-1 ``metrics`` of its configuration
    (by default a score peaking at lr 1e-3)."""
    settings = SweepSettings(results_dir=Path("unused"), algorithm=algorithm, max_trials=trials, max_epochs=3,
                             seed=3)
    searcher = build_searcher(settings, _rtdetr_space())
    proposals = []
    for i in range(trials):
        config = searcher.suggest(f"t{i}")
        proposals.append(config)
        result = {**metrics(config), TIME_ATTR: 1, "training_iteration": 1}
        searcher.on_trial_result(f"t{i}", result)
        searcher.on_trial_complete(f"t{i}", result)
    return searcher, proposals


def test_trials_asha_stopped_reach_optuna_as_pruned_with_their_epoch_values():
    searcher, _ = _pruned_sweep("asha", trials=5)
    told = searcher._ot_study.get_trials(deepcopy=False)
    assert [t.state for t in told] == [optuna.trial.TrialState.PRUNED] * 5
    assert all(list(t.intermediate_values) == [1] for t in told)
    assert len(searcher.pruned_trials) == 5


def test_a_requeued_trial_s_configuration_is_the_searcher_s_next_proposal():
    searcher, proposals = _pruned_sweep("asha", trials=6)
    assert searcher.requeue("t2") and not searcher.requeue("unknown")
    rerun = searcher.suggest("t6")
    assert rerun == {**proposals[2], RERUN_OF: "t2"}   # the mark is no parameter: the trial's spec drops it
    assert without_helper_parameters(rerun) == without_helper_parameters(proposals[2])
    assert searcher._ot_trials["t6"].user_attrs["rerun_of"] == "t2"
    assert searcher.suggest("t7") != proposals[2]   # once


def test_a_sweep_says_when_a_trial_s_configuration_runs_again(tmp_path):
    from automl.sweep.callback import SweepCallback, attach
    from automl.sweep.records import TrialsTable
    from automl.sweep.runner import _run_again

    settings = SweepSettings(results_dir=tmp_path, algorithm="asha", max_trials=6, max_epochs=3, seed=3)
    lines = []
    attach(settings, TrialsTable(tmp_path / "trials.csv", settings.metric), None, lines.append)
    searcher, proposals = _pruned_sweep("asha", trials=2)
    assert _run_again(searcher, SweepCallback(settings), settings, "t0")
    assert lines == ["trial t0 stopped at the first rung before it held 3 results and now ranks in its top 1/3: "
                     "its configuration runs again next"]
    assert searcher.suggest("t2") == {**proposals[0], RERUN_OF: "t0"}


def test_a_rerun_names_the_trial_it_repeats_in_trials_csv_and_mlflow(tmp_path):
    from automl.sweep.callback import SweepCallback, attach
    from automl.sweep.records import TrialsTable
    from automl.sweep.tracking import RERUN_TAG, SweepTracker

    settings = SweepSettings(results_dir=tmp_path, algorithm="asha", max_trials=6, max_epochs=3, seed=3)
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracker.start_sweep("sweep", run_name="s", spec={}, space={}, settings={})
    attach(settings, TrialsTable(tmp_path / "trials.csv", settings.metric), tracker, lambda line: None)
    searcher, proposals = _pruned_sweep("asha", trials=2)
    searcher.requeue("t0")
    callback = SweepCallback(settings)
    for trial_id in ("t0", "t2"):   # the Ray trials as the callback sees them: id, config, failures so far
        config = proposals[0] if trial_id == "t0" else searcher.suggest(trial_id)
        callback.on_trial_start(0, [], SimpleNamespace(trial_id=trial_id, config=config,
                                                       run_metadata=SimpleNamespace(num_failures=0)))

    with open(tmp_path / "trials.csv", newline="") as handle:
        rows = {row["trial_id"]: row for row in csv.DictReader(handle)}
    assert rows["t2"]["rerun_of"] == "t0" and rows["t0"]["rerun_of"] == ""
    assert rows["t2"]["train.optim.lr"] == rows["t0"]["train.optim.lr"] and RERUN_OF not in rows["t2"]
    assert TrialsTable(tmp_path / "trials.csv").records["t2"].rerun_of == "t0"   # as --resume reads it back
    run = tracker.client.get_run(tracker._children["t2"])
    assert run.data.tags[RERUN_TAG] == "t0" and not any("#" in name for name in run.data.params)
    assert RERUN_TAG not in tracker.client.get_run(tracker._children["t0"]).data.tags


def _mean_distance_after_startup(proposals) -> float:
    own = proposals[startup_trials(len(proposals)):]
    return sum(map(_distance_to_good_lr, own)) / len(own)


def test_tpe_steers_by_pruned_trials_toward_the_learning_rate_their_epoch_values_favour():
    _, tpe = _pruned_sweep("asha")
    _, random = _pruned_sweep("random")
    tpe_distance, random_distance = _mean_distance_after_startup(tpe), _mean_distance_after_startup(random)
    # Without the pruned trials' values TPE would still be drawing at random (or modelling nothing).
    assert tpe_distance < 0.5 * random_distance, (tpe_distance, random_distance)


def test_tpe_steers_by_the_training_loss_of_pruned_trials_whose_scores_are_chance_matches():
    # Every epoch-1 score is under the noise floor and says nothing of lr; the training loss falls toward
    # lr 1e-3 (a learning configuration lowers it from about 28 at once).
    def chance_score_and_loss(seed):
        chance = random.Random(seed)
        return lambda config: {"val_mAP50": chance.uniform(0, 0.5 * NOISE_FLOOR),
                               "loss": 20.0 + 3.0 * _distance_to_good_lr(config)}

    tpe = [_mean_distance_after_startup(_pruned_sweep("asha", metrics=chance_score_and_loss(s))[1]) for s in range(3)]
    rnd = [_mean_distance_after_startup(_pruned_sweep("random", metrics=chance_score_and_loss(s))[1]) for s in range(3)]
    # Ordered by the chance scores, TPE would follow noise and draw about as far off as random search.
    assert sum(tpe) < 0.5 * sum(rnd), (tpe, rnd)


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
