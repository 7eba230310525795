"""MLflow tracking of a sweep, read back from a real SQLite store: one parent run, one nested child per trial."""
from __future__ import annotations

import math
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from mlflow.tracking import MlflowClient

from automl.sweep.tracking import MASK, SweepTracker, TrackingError, mask_secrets, sanitize_name

SPEC = {
    "encryption_key": "tlt_encode",
    "model": {"backbone": "resnet_18", "num_queries": 50},
    "train": {"num_epochs": 3, "optim": {"lr": 1e-4, "lr_steps": [10, 20]}},
    "dataset": {"train_data_sources": [{"image_dir": "/data/images", "json_file": "/data/train.json"}]},
    "hub": {"api_key": "abc", "hf_token": "hf_secret_value", "notes": "x" * 7000},
}
SPACE = {"train.optim.lr": {"low": 1e-5, "high": 1e-3, "log": True}}
SETTINGS = {"metric": "val_mAP50", "algorithm": "asha", "max_trials": 3}
# trial id -> (status, val_mAP50 per epoch, reason)
TRIALS = {
    "t0": ("completed", [0.1, 0.3, 0.25], ""),
    "t1": ("pruned", [0.05, 0.08], "stopped by ASHA at epoch 1"),
    "t2": ("failed", [0.02], "RuntimeError: loss is NaN\n  at epoch 1"),
}


def epoch_metrics(value: float, epoch: int) -> dict:
    """What the trainer writes per epoch, plus values MLflow cannot take (None, NaN, text, odd names)."""
    return {"val_mAP50": value, "loss": 1.0 / (epoch + 1), "lr": 1e-4, "mAP@0.5:0.95": value / 2,
            "val_mAP75": None, "loss_vfl": float("nan"), "phase": "train"}


def run_sweep(tracker: SweepTracker, sweep_id: str, trials: dict, tmp_path: Path) -> str:
    parent = tracker.start_sweep(sweep_id, run_name=f"sweep {sweep_id}", spec=SPEC, space=SPACE, settings=SETTINGS)
    for number, (trial_id, (status, values, reason)) in enumerate(trials.items()):
        tracker.start_trial(trial_id, {"train": {"optim": {"lr": 1e-4 * (number + 1)}}, "model.num_queries": 50,
                                       "wandb.api_key": "k"})
        for epoch, value in enumerate(values):
            tracker.log_epoch(trial_id, epoch_metrics(value, epoch), step=epoch)
        tracker.finish_trial(trial_id, status=status, best_value=max(values), best_epoch=values.index(max(values)),
                             epochs_run=len(values), wall_seconds=12.5 + number, reason=reason)
    (tmp_path / "trials.csv").write_text("trial_id,status\nt0,completed\n")
    (tmp_path / "export").mkdir(exist_ok=True)
    (tmp_path / "export" / "model.onnx").write_bytes(b"onnx")
    tracker.finish_sweep(best={"trial_id": "t0", "value": 0.3, "epoch": 1},
                         artifacts=[tmp_path / "trials.csv", tmp_path / "export", tmp_path / "not_built.engine"])
    return parent


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{root}/automl/mlflow.db"
    tracker = SweepTracker(uri)
    parent = run_sweep(tracker, "sweep-1", TRIALS, root)
    client = MlflowClient(tracking_uri=uri)
    children = {run.data.tags["tao_automl.trial_id"]: run for run in client.search_runs(
        [tracker.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")}
    return SimpleNamespace(root=root, uri=uri, tracker=tracker, parent=client.get_run(parent), children=children,
                           client=client)


def test_the_database_is_created_in_the_results_folder(sweep):
    assert (sweep.root / "automl" / "mlflow.db").is_file()


def test_every_trial_is_one_child_of_the_sweep_run_with_its_sampled_values_as_dotted_params(sweep):
    assert sorted(sweep.children) == ["t0", "t1", "t2"]
    for number, trial_id in enumerate(["t0", "t1", "t2"]):
        params = sweep.children[trial_id].data.params
        assert float(params["train.optim.lr"]) == pytest.approx(1e-4 * (number + 1))
        assert params["model.num_queries"] == "50"


def test_per_epoch_metrics_have_the_epoch_as_step_and_unloggable_values_are_skipped(sweep):
    for trial_id, (_, values, _) in TRIALS.items():
        history = sweep.client.get_metric_history(sweep.children[trial_id].info.run_id, "val_mAP50")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == list(enumerate(values))
    metrics = sweep.children["t0"].data.metrics
    assert "mAP_0.5:0.95" in metrics  # '@' is not allowed in MLflow names
    assert not {"val_mAP75", "loss_vfl", "phase"} & set(metrics)


def test_each_child_carries_its_best_value_best_epoch_status_and_wall_time(sweep):
    expected = {"t0": ("FINISHED", 0.3, 1), "t1": ("KILLED", 0.08, 1), "t2": ("FAILED", 0.02, 0)}
    for trial_id, (run_status, best, best_epoch) in expected.items():
        run = sweep.children[trial_id]
        assert run.info.status == run_status
        assert run.data.tags["tao_automl.status"] == TRIALS[trial_id][0]
        assert run.data.metrics["best_val_mAP50"] == pytest.approx(best)
        assert run.data.metrics["best_epoch"] == best_epoch
        assert run.data.metrics["epochs_run"] == len(TRIALS[trial_id][1])
        assert run.data.metrics["wall_seconds"] > 12
    assert sweep.children["t2"].data.tags["tao_automl.reason"] == "RuntimeError: loss is NaN at epoch 1"


def test_the_sweep_run_holds_spec_space_settings_best_trial_and_the_sweeps_files(sweep):
    run = sweep.parent
    assert run.info.status == "FINISHED" and "mlflow.parentRunId" not in run.data.tags
    assert run.data.params["train.optim.lr"] == "0.0001"
    assert run.data.params["dataset.train_data_sources.0.image_dir"] == "/data/images"
    assert len(run.data.params["hub.notes"]) == 6000  # MLflow's limit for a param value
    assert run.data.metrics["best_val_mAP50"] == pytest.approx(0.3) and run.data.metrics["best_epoch"] == 1
    assert run.data.tags["tao_automl.best_trial_id"] == "t0"
    assert run.data.tags["tao_automl.best_run_id"] == sweep.children["t0"].info.run_id
    artifacts = {a.path for a in sweep.client.list_artifacts(run.info.run_id)}
    assert {"spec.yaml", "search_space.json", "settings.json", "trials.csv", "export"} <= artifacts
    assert [a.path for a in sweep.client.list_artifacts(run.info.run_id, "export")] == ["export/model.onnx"]


def test_secrets_never_reach_mlflow(sweep):
    params = sweep.parent.data.params
    assert params["encryption_key"] == MASK and params["hub.api_key"] == MASK and params["hub.hf_token"] == MASK
    assert sweep.children["t0"].data.params["wandb.api_key"] == MASK
    spec_file = Path(sweep.client.download_artifacts(sweep.parent.info.run_id, "spec.yaml", str(sweep.root)))
    logged = yaml.safe_load(spec_file.read_text())
    assert logged["encryption_key"] == MASK and logged["hub"]["hf_token"] == MASK
    assert logged["model"] == SPEC["model"]
    assert "tlt_encode" not in spec_file.read_text() and "hf_secret_value" not in spec_file.read_text()


def test_mask_secrets_masks_by_the_last_key_component_in_nested_and_dotted_dicts():
    data = {"a": {"ngc_api_key": "1", "tokenizer_path": "/x", "b": [{"db_password": "2"}]}, "x.my_secret": "3",
            "key": "visible", "password_hint": None}
    assert mask_secrets(data) == {"a": {"ngc_api_key": MASK, "tokenizer_path": MASK, "b": [{"db_password": MASK}]},
                                  "x.my_secret": MASK, "key": "visible", "password_hint": None}
    assert data["a"]["ngc_api_key"] == "1"  # the input is not changed


def test_metric_names_mlflow_refuses_are_sanitised():
    assert sanitize_name("mAP@0.5") == "mAP_0.5"
    assert sanitize_name("a/../b//c") == "a/_/b/c"
    assert len(sanitize_name("x" * 400)) == 250


def test_resume_reuses_the_sweep_run_and_children_and_does_not_log_an_epoch_twice(sweep, tmp_path):
    first = SweepTracker(sweep.uri)
    parent = first.start_sweep("sweep-resume", run_name="r", spec=SPEC, space=SPACE, settings=SETTINGS)
    child = first.start_trial("a", {"lr": 0.1})
    for epoch in range(3):
        first.log_epoch("a", {"val_mAP50": 0.1 * epoch}, step=epoch)
    first.start_trial("b", {"lr": 0.2})
    first.finish_trial("b", status="completed", best_value=0.5, best_epoch=0, epochs_run=1, wall_seconds=1.0)
    orphan = first.start_trial("c", {"lr": 0.3})
    half = first.start_trial("d", {"lr": 0.4})   # killed inside finish_trial: status tag written, run not ended
    first._log_metrics(half, {}, step=0, tags={"tao_automl.status": "completed"})
    del first  # the driver was killed: the sweep run stays RUNNING, trials "a", "c" and "d" unfinished

    again = SweepTracker(sweep.uri)
    assert again.start_sweep("sweep-resume", run_name="r", spec=SPEC, space=SPACE, settings=SETTINGS) == parent
    assert again.finished_trial_ids() == {"b"}
    assert again.start_trial("a", {"lr": 0.1}) == child
    for epoch in range(5):  # the trainer resumes and the callback replays epochs 0-2 before the new ones
        again.log_epoch("a", {"val_mAP50": 0.1 * epoch}, step=epoch)
    again.finish_trial("a", status="completed", best_value=0.4, best_epoch=4, epochs_run=5, wall_seconds=2.0)

    client = MlflowClient(tracking_uri=sweep.uri)
    runs = client.search_runs([again.experiment_id], "tags.`tao_automl.sweep_id` = 'sweep-resume'")
    assert len(runs) == 1 and runs[0].info.status == "RUNNING"
    children = client.search_runs([again.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.data.tags["tao_automl.trial_id"] for r in children) == ["a", "b", "c", "d"]
    steps = sorted(m.step for m in client.get_metric_history(child, "val_mAP50"))
    assert steps == [0, 1, 2, 3, 4]
    assert again.finished_trial_ids() == {"a", "b"}

    again.finish_sweep(best=None, artifacts=[])  # "c" was never resumed: it must not stay RUNNING for ever
    assert client.get_run(orphan).info.status == "KILLED"
    assert client.get_run(orphan).data.tags["tao_automl.status"] == "interrupted"
    assert client.get_run(parent).info.status == "FINISHED"


def test_an_unknown_status_is_refused(sweep):
    with pytest.raises(ValueError, match="expected one of"):
        sweep.tracker.finish_trial("t0", status="done", best_value=0, best_epoch=0, epochs_run=0, wall_seconds=0)


def test_a_trial_that_ends_without_having_been_started_still_gets_its_child_run(sweep):
    tracker = SweepTracker(sweep.uri)
    parent = tracker.start_sweep("sweep-early-failure", run_name="e", spec={}, space={}, settings={})
    tracker.finish_trial("p", status="failed", best_value=None, best_epoch=None, epochs_run=0, wall_seconds=0.1,
                         reason="no resources")
    [run] = sweep.client.search_runs([tracker.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert run.data.tags["tao_automl.trial_id"] == "p" and run.info.status == "FAILED"
    assert "best_val_mAP50" not in run.data.metrics and run.data.metrics["epochs_run"] == 0


def test_ui_hint_names_the_results_folder_and_only_adds_a_uri_that_is_not_the_default(sweep, tmp_path):
    assert sweep.tracker.ui_hint(sweep.root) == f"tao-automl ui {sweep.root}"
    assert sweep.tracker.ui_hint(tmp_path) == f"tao-automl ui {tmp_path} --tracking-uri {sweep.uri}"


def hold_exclusive_lock(db: Path, seconds: float) -> threading.Thread:
    """Hold SQLite's exclusive lock on ``db`` for ``seconds`` in a thread; returns once it is held."""
    held = threading.Event()

    def hold():
        connection = sqlite3.connect(db, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
        connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    held.wait(10)
    return thread


def test_a_briefly_locked_database_makes_the_tracker_wait_and_succeed(sweep):
    tracker = SweepTracker(sweep.uri)
    tracker.start_sweep("sweep-locked", run_name="l", spec={}, space={}, settings={})
    tracker.start_trial("a", {})
    holder = hold_exclusive_lock(sweep.root / "automl" / "mlflow.db", 1.0)
    started = time.monotonic()
    tracker.log_epoch("a", {"val_mAP50": 0.5}, step=0)
    assert time.monotonic() - started >= 0.8
    holder.join()
    history = MlflowClient(tracking_uri=sweep.uri).get_metric_history(tracker._child("a"), "val_mAP50")
    assert [m.value for m in history] == [0.5]


@pytest.mark.slow
def test_a_lock_held_past_mlflows_own_wait_is_retried_then_reported_in_one_line_naming_the_uri(tmp_path):
    db = tmp_path / "automl" / "mlflow.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    holder = hold_exclusive_lock(db, 8.0)
    started = time.monotonic()
    with pytest.raises(TrackingError) as error:  # the first store access waits 5 s in sqlite itself
        SweepTracker(uri, lock_wait_seconds=1.0)
    assert time.monotonic() - started < 8.0
    assert str(error.value).startswith(f"{uri}: the MLflow database stayed locked") and "\n" not in str(error.value)
    tracker = SweepTracker(uri, lock_wait_seconds=30.0)  # retried until the holder lets go
    assert time.monotonic() - started >= 7.5
    holder.join()
    assert tracker.start_sweep("s", run_name="s", spec={}, space={}, settings={})


def test_a_new_store_is_copied_from_a_migrated_template_made_once(tmp_path, monkeypatch):
    from automl.sweep.mlflow_store import seed_new_store, template_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    opened = []

    def open_store(uri):
        opened.append(uri)
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)

    (tmp_path / "a").mkdir()
    seed_new_store(tmp_path / "a" / "mlflow.db", open_store)
    seed_new_store(tmp_path / "a" / "mlflow.db", open_store)   # exists now: left alone
    (tmp_path / "b").mkdir()
    seed_new_store(tmp_path / "b" / "mlflow.db", open_store)

    assert len(opened) == 1 and template_path().is_file(), "the migrations ran once, for the template"
    assert (tmp_path / "b" / "mlflow.db").read_bytes() == template_path().read_bytes()
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}")
    tracker.start_sweep("s1", run_name="sweep", spec={}, space={}, settings={})
    assert [r.info.run_id for r in tracker.client.search_runs([tracker.experiment_id])] == [tracker.parent_id]
    assert not list(tmp_path.rglob("*.tmp"))
