"""The sweep's parts without Ray running: settings, sampler, pruned trials, trials.csv, trial specs, processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from automl.search_space import search_space_for
from automl.sweep.child import TrainingProcess
from automl.sweep.records import TrialsTable
from automl.sweep.searchers import SchedulerAwareOptunaSearch, build_sampler, grid_size, grid_space
from automl.sweep.settings import SweepSettings, settings_from
from automl.sweep.trial import TIME_ATTR, TrialContext, failure_reason, result_of, trial_spec
from trainers.errors import UserError

SPEC = {"results_dir": "/tmp/r", "train": {"num_epochs": 12}, "automl": {}}


def test_nvidia_setting_names_are_read_and_flags_win(tmp_path):
    spec = {**SPEC, "results_dir": str(tmp_path),
            "automl": {"automl_algorithm": "hyperband", "automl_max_recommendations": 5, "automl_max_epochs": 9,
                       "epoch_multiplier": 2, "automl_reduction_factor": 4, "automl_delete_intermediate_ckpt": False}}
    settings = settings_from(spec, {"max_trials": 7, "seed": None})
    assert (settings.algorithm, settings.max_trials, settings.max_epochs, settings.grace_period) == ("hyperband", 7,
                                                                                                     18, 2)
    assert settings.reduction_factor == 4 and settings.delete_intermediate_checkpoints is False
    assert settings.tracking_uri == f"sqlite:///{tmp_path.resolve()}/automl/mlflow.db"


def test_epochs_default_to_the_spec_and_metric_direction_follows_its_name(tmp_path):
    settings = settings_from({**SPEC, "results_dir": str(tmp_path)}, {})
    assert settings.max_epochs == 12 and settings.mode == "max" and settings.gpus_per_trial == 0
    assert settings_from({**SPEC, "results_dir": str(tmp_path)}, {"metric": "loss_bbox"}).mode == "min"


@pytest.mark.parametrize("flags, message", [
    ({"algorithm": "genetic"}, "--algorithm genetic: expected one of"),
    ({"grace_period": 20}, "automl_grace_period 20 is longer than a trial (12 epochs)"),
    ({"gpus_per_trial": 1.0}, "--gpus-per-trial 1.0: this machine has no GPU"),
    ({"cpus_per_trial": 0.0}, "--cpus-per-trial 0.0"),
    ({"max_trials": 0}, "--max-trials 0"),
])
def test_impossible_settings_are_one_line_errors(tmp_path, flags, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from({**SPEC, "results_dir": str(tmp_path)}, flags)


def test_samplers_are_seeded_and_explicit(tmp_path):
    space = search_space_for("rtdetr", None)
    settings = SweepSettings(results_dir=tmp_path, algorithm="bayesian", max_trials=12, seed=3)
    sampler = build_sampler(settings, space)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._multivariate and sampler._constant_liar and sampler._n_startup_trials == 4
    for early_stopping in ("asha", "hyperband", "bohb"):   # test_tpe_search.py says why
        assert not build_sampler(SweepSettings(results_dir=tmp_path, algorithm=early_stopping), space)._constant_liar
    random_sampler = build_sampler(SweepSettings(results_dir=tmp_path, algorithm="random"), space)
    assert isinstance(random_sampler, optuna.samplers.RandomSampler)


def _searcher(tmp_path, max_epochs=4):
    space = search_space_for("rtdetr", {"automl": {"hyperparameters": ["train.optim.lr", "model.num_queries"]}})
    settings = SweepSettings(results_dir=tmp_path, max_epochs=max_epochs)
    searcher = SchedulerAwareOptunaSearch(
        space=__import__("search_spaces.optuna_space", fromlist=["define_by_run"]).define_by_run(space),
        metric="val_mAP50", mode="max", sampler=build_sampler(settings, space), seed=0, max_epochs=max_epochs)
    return searcher


def test_a_trial_the_scheduler_stopped_is_told_to_optuna_as_pruned(tmp_path):
    searcher = _searcher(tmp_path)
    for trial_id, epochs in (("full", 4), ("stopped", 1)):
        assert searcher.suggest(trial_id)["train.optim.lr"] > 0
        for epoch in range(epochs):
            searcher.on_trial_result(trial_id, {"val_mAP50": 0.1 * (epoch + 1), "training_iteration": epoch + 1,
                                                TIME_ATTR: epoch + 1})
        searcher.on_trial_complete(trial_id, {"val_mAP50": 0.1 * epochs, TIME_ATTR: epochs})
    states = {t.number: t.state for t in searcher._ot_study.trials}
    assert states == {0: optuna.trial.TrialState.COMPLETE, 1: optuna.trial.TrialState.PRUNED}
    assert searcher._ot_study.trials[1].intermediate_values == {1: pytest.approx(0.1)}
    assert searcher.pruned_trials == ["stopped"]


def test_a_failed_trial_is_told_as_pruned_with_the_epochs_it_reported(tmp_path):
    searcher = _searcher(tmp_path)
    searcher.suggest("diverged_at_once")
    searcher.on_trial_complete("diverged_at_once", None, error=True)
    searcher.suggest("crashed_later")
    searcher.on_trial_result("crashed_later", {"val_mAP50": 0.2, "training_iteration": 1, TIME_ATTR: 1})
    searcher.on_trial_complete("crashed_later", None, error=True)
    first, second = searcher._ot_study.trials
    # FAILED trials are invisible to TPE, which would propose the diverging region again.
    assert first.state == second.state == optuna.trial.TrialState.PRUNED
    assert first.intermediate_values == {} and second.intermediate_values == {1: pytest.approx(0.2)}
    assert searcher.pruned_trials == []   # the scheduler stopped neither


def test_the_searcher_survives_a_pickle_round_trip(tmp_path):
    searcher = _searcher(tmp_path)
    searcher.suggest("a")
    path = tmp_path / "searcher.pkl"
    searcher.save(str(path))
    restored = _searcher(tmp_path)
    restored.restore(str(path))
    assert len(restored._ot_study.trials) == 1 and "a" in restored._ot_trials


def test_grid_covers_choices_and_log_spaced_numbers(tmp_path):
    space = search_space_for("rtdetr", {"automl": {"hyperparameters": ["train.optim.lr", "model.dec_layers"]}})
    grid = grid_space(space)
    lr = grid["train.optim.lr"]
    assert len(lr) == 3 and lr[0] < lr[1] < lr[2] and lr[1] / lr[0] == pytest.approx(lr[2] / lr[1])
    assert grid_size(space) == len(lr) * len(next(v for k, v in grid.items() if k.startswith("model.dec_layers")))


def test_trials_table_is_keyed_by_trial_and_survives_a_reload(tmp_path):
    table = TrialsTable(tmp_path / "trials.csv")
    first = table.get("t1")
    first.values, first.status, first.best_value, first.best_epoch, first.epochs_run = (
        {"train.optim.lr": 1e-4, "model.backbone": "resnet_18"}, "completed", 0.5, 3, 4)
    second = table.get("t2")
    second.values, second.status, second.best_value, second.epochs_run = {"train.optim.lr": 2e-4}, "pruned", 0.2, 1
    table.get("t1").reason = "x"   # same id: the same row
    table.save()
    reloaded = TrialsTable(tmp_path / "trials.csv")
    assert sorted(reloaded.records) == ["t1", "t2"]
    assert reloaded.records["t1"].values == {"train.optim.lr": 1e-4, "model.backbone": "resnet_18"}
    assert reloaded.best().trial_id == "t1" and reloaded.records["t2"].status == "pruned"
    header = (tmp_path / "trials.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["trial_id", "status"] and "best_val_mAP50" in header and "wall_seconds" in header


def test_a_trial_spec_has_its_values_own_folder_and_the_epoch_budget(tmp_path):
    base = {"results_dir": "/data/out", "train": {"num_epochs": 50, "validation_interval": 5, "optim": {"lr": 1e-4}},
            "automl": {"automl_algorithm": "asha"}}
    context = TrialContext("rtdetr", base, SweepSettings(results_dir=tmp_path, max_epochs=6))
    spec = trial_spec(context, {"train.optim.lr": 3e-4}, tmp_path / "t1")
    assert spec["results_dir"] == str(tmp_path / "t1") and spec["train"]["optim"]["lr"] == 3e-4
    assert spec["train"]["num_epochs"] == 6 and spec["train"]["validation_interval"] == 1
    assert "automl" not in spec and base["train"]["optim"]["lr"] == 1e-4


def test_an_epoch_without_the_metric_fails_the_trial_with_a_reason():
    assert result_of({"epoch": 2, "val_mAP50": 0.3, "loss": 1.0, "lr_backbone": None}, "val_mAP50")[TIME_ATTR] == 3
    with pytest.raises(RuntimeError, match="no 'val_mAP50' for epoch 0"):
        result_of({"epoch": 0, "val_mAP50": None}, "val_mAP50")


def test_failure_reasons_are_one_line():
    assert failure_reason(["epoch 0 ...", "tao-automl train: error: the loss became NaN at step 3"], 2) == \
        "tao-automl train: error: the loss became NaN at step 3"
    assert "SIGKILL (out of memory?)" in failure_reason([], -9)   # the OOM counter unavailable
    assert "out-of-memory killer ran meanwhile" in failure_reason([], -9, oom_killer_ran=True)
    assert "not by the kernel's out-of-memory killer" in failure_reason([], -9, oom_killer_ran=False)
    assert failure_reason([], -15, oom_killer_ran=True) == "the trainer was killed by SIGTERM"


def test_stopping_a_training_process_ends_its_whole_group(tmp_path):
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
             "print('started', flush=True); time.sleep(60)"
    process = TrainingProcess([sys.executable, "-c", script], tmp_path / "log.txt")
    deadline = time.monotonic() + 20
    while "started" not in (tmp_path / "log.txt").read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    group = process.pid
    members = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True).stdout.split()
    assert len(members) == 2, "the child and its grandchild share the trial's process group"
    process.stop(grace_seconds=2)
    assert not [pid for pid in members if _running(int(pid))], "nothing left running"


@pytest.mark.skipif(not Path("/proc/vmstat").is_file(), reason="the OOM-kill counter is Linux's /proc/vmstat")
def test_a_trainer_killed_by_another_process_is_not_blamed_on_memory(tmp_path):
    process = TrainingProcess([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log.txt")
    os.kill(process.pid, signal.SIGKILL)
    code = process.process.wait(timeout=20)
    process.stop()
    reason = failure_reason([], code, process.oom_killer_ran())
    assert reason == ("the trainer was killed by SIGKILL (not by the kernel's out-of-memory killer: another "
                      "process stopped it)")


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may be slow to reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def test_a_stopped_sweep_keeps_its_running_trials_best_so_far(tmp_path):
    table = TrialsTable(tmp_path / "trials.csv")
    running = table.get("t1")
    running.best_value, running.best_epoch, running.epochs_run = 0.3, 2, 3
    table.get("t2").status = "failed"
    table.mark_interrupted()
    assert running.status == "interrupted" and not running.finished
    assert table.best().trial_id == "t1"


def test_a_grid_sweep_whose_last_point_failed_goes_on(tmp_path):
    # Optuna's GridSampler stops the study when its last point is told, which raises outside Study.optimize.
    space = search_space_for("rtdetr", {"automl": {"hyperparameters": ["model.backbone"]}})
    settings = SweepSettings(results_dir=tmp_path, algorithm="grid")
    searcher = SchedulerAwareOptunaSearch(
        space=__import__("search_spaces.optuna_space", fromlist=["define_by_run"]).define_by_run(space),
        metric="val_mAP50", mode="max", sampler=build_sampler(settings, space), seed=0, max_epochs=4)
    points = grid_size(space)
    for i in range(points):
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", None, error=True)
    assert [t.state for t in searcher._ot_study.trials] == [optuna.trial.TrialState.PRUNED] * points
