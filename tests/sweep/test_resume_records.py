"""Resuming after a kill -9 forgets a trial the driver had only just started, so it is not listed twice.

The driver records a trial when Tune starts it (trials.csv, an MLflow child).
Killed before Tune's own experiment checkpoint, Tune's restored searcher
proposes that configuration again under a new trial id: the old row would stay
behind as a second, never-trained copy.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

from automl.sweep.callback import forget_untrained_trials
from automl.sweep.records import TrialsTable
from automl.sweep.tracking import SweepTracker


def test_a_started_trial_that_trained_no_epoch_is_forgotten_on_resume_and_trained_ones_stay(tmp_path):
    trials_dir = tmp_path / "automl" / "trials"
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracker.start_sweep("sweep", run_name="s", spec={}, space={}, settings={})
    table = TrialsTable(tmp_path / "automl" / "trials.csv")
    for trial_id, status in (("done", "completed"), ("partly", "running"), ("ghost", "running")):
        record = table.get(trial_id)
        record.status, record.values = status, {"train.optim.lr": 1e-4}
        tracker.start_trial(trial_id, record.values)
    table.get("done").epochs_run = 2
    (trials_dir / "partly" / "train").mkdir(parents=True)   # one epoch trained before the kill
    (trials_dir / "partly" / "train" / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "val_mAP50": 0.1}) + "\n")
    (trials_dir / "ghost" / "train").mkdir(parents=True)   # its spec and the trainer's first files, no epoch
    (trials_dir / "ghost" / "spec.yaml").write_text("train: {num_epochs: 2}\n")
    table.save()

    resumed = TrialsTable(tmp_path / "automl" / "trials.csv")
    forget_untrained_trials(SimpleNamespace(trials_dir=trials_dir), resumed, tracker)

    assert sorted(TrialsTable(tmp_path / "automl" / "trials.csv").records) == ["done", "partly"]
    assert sorted(p.name for p in trials_dir.iterdir()) == ["partly"], "the forgotten trial's folder stays"
    children = tracker._search(f"tags.`mlflow.parentRunId` = '{tracker.parent_id}'")
    assert sorted(run.data.tags["tao_automl.trial_id"] for run in children) == ["done", "partly"]


def test_a_trial_resumed_from_its_checkpoint_keeps_the_epochs_the_killed_driver_saw(tmp_path):
    """HyperBand, BOHB and PBT trials restart from their last checkpoint and report only the epochs after
    it; trials.csv (written at a trial's start and end) must still rank the trial by all its epochs."""
    from automl.sweep.callback import SweepCallback, attach
    from automl.sweep.settings import SweepSettings
    from automl.sweep.trial import TIME_ATTR

    settings = SweepSettings(results_dir=tmp_path, algorithm="hyperband", max_trials=2, max_epochs=4, seed=0)
    scores = [0.0, 0.3, 0.2, 0.3]   # best at epoch 1; epoch 3 ties it and must not take its place
    train = settings.trials_dir / "t0" / "train"
    train.mkdir(parents=True)
    (train / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "val_mAP50": s}) + "\n"
                                                 for e, s in enumerate(scores)))
    table = TrialsTable(settings.results_dir / "automl" / "trials.csv", settings.metric)
    attach(settings, table, None, lambda line: None)
    callback = SweepCallback(settings)
    trial = SimpleNamespace(trial_id="t0", config={"train.optim.lr": 1e-4}, last_result=None,
                            run_metadata=SimpleNamespace(num_failures=0))
    callback.on_trial_start(0, [], trial)   # the resumed driver: the checkpoint was at epoch 2
    for epoch in (2, 3):
        trial.last_result = {"val_mAP50": scores[epoch], "epoch": epoch, TIME_ATTR: epoch + 1}
        callback.on_trial_result(0, [], trial, trial.last_result)
    callback.on_trial_complete(0, [], trial)

    row = TrialsTable(settings.results_dir / "automl" / "trials.csv").records["t0"]
    assert (row.status, row.best_value, row.best_epoch, row.epochs_run) == ("completed", 0.3, 1, 4)
    final = json.loads((settings.trials_dir / "t0" / "final.json").read_text())
    assert (final["best_value"], final["best_epoch"], final["epochs_run"]) == (0.3, 1, 4)
