"""``tao-automl ui``: the MLflow UI over a sweep's SQLite store, read back through its REST API."""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request

import pytest

from automl.cli import main
from automl.commands.ui import start_ui, stop_ui
from automl.sweep.tracking import SweepTracker


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(url: str, body: dict = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_until_serving(url: str, process, seconds: float = 60.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "mlflow server exited before it answered"
        try:
            return call(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.slow
def test_the_ui_serves_the_sweeps_runs_and_metrics_on_localhost_and_stops_cleanly(tmp_path):
    tracker = SweepTracker(f"sqlite:///{tmp_path}/automl/mlflow.db")
    parent = tracker.start_sweep("s", run_name="sweep", spec={"train": {"num_epochs": 2}}, space={}, settings={})
    for number, trial_id in enumerate(["t0", "t1"]):
        tracker.start_trial(trial_id, {"train.optim.lr": 0.001 * (number + 1)})
        for epoch in range(2):
            tracker.log_epoch(trial_id, {"val_mAP50": 0.1 * (epoch + 1) + number}, step=epoch)
        tracker.finish_trial(trial_id, status="completed", best_value=0.2 + number, best_epoch=1, epochs_run=2,
                             wall_seconds=3.0)
    tracker.finish_sweep(best={"trial_id": "t1", "value": 1.2, "epoch": 1}, artifacts=[])

    port = free_port()
    process = start_ui(tmp_path, "127.0.0.1", port)
    try:
        base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        experiment = wait_until_serving(f"{base}/experiments/get-by-name?experiment_name=tao-automl", process)
        experiment_id = experiment["experiment"]["experiment_id"]
        found = call(f"{base}/runs/search", {"experiment_ids": [experiment_id],
                                             "filter": f"tags.`mlflow.parentRunId` = '{parent}'"})
        children = {}
        for run in found["runs"]:
            tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
            children[tags["tao_automl.trial_id"]] = run
        assert sorted(children) == ["t0", "t1"]
        for number, trial_id in enumerate(["t0", "t1"]):
            run = children[trial_id]
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            params = {p["key"]: p["value"] for p in run["data"]["params"]}
            assert run["info"]["status"] == "FINISHED"
            assert metrics["best_val_mAP50"] == pytest.approx(0.2 + number) and metrics["best_epoch"] == 1
            assert float(params["train.optim.lr"]) == pytest.approx(0.001 * (number + 1))
        artifacts = call(f"{base}/artifacts/list?run_id={parent}")
        assert {"spec.yaml", "settings.json"} <= {f["path"] for f in artifacts["files"]}
    finally:
        stop_ui(process)
    assert process.poll() is not None
    assert not group_alive(process.pid), "a process of the UI is still running"


def test_a_results_folder_without_a_tracking_database_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["ui", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error
    assert str(tmp_path / "automl" / "mlflow.db") in error and "no MLflow database" in error


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "automl").mkdir()
    (tmp_path / "automl" / "mlflow.db").touch()  # the port is checked before the database is opened
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["ui", str(tmp_path), "--port", str(taken.getsockname()[1])]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "pick another port" in error


def test_help_says_the_ui_binds_localhost_by_default(capsys):
    with pytest.raises(SystemExit):
        main(["ui", "--help"])
    assert "127.0.0.1" in capsys.readouterr().out
