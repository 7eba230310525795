"""What keeps a sweep's orchestration cheap, and that it loses nothing: Ray actors reused between trials
(a stopped trial's trainer ended first), the report drawn by a child process beside the export."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from automl.sweep.child import _group_alive
from automl.sweep.report.background import ReportProcess
from automl.sweep.runner import reuse_actors
from automl.sweep.settings import SweepSettings

from .tiny_sweep import tiny_sweep_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("algorithm, reused", [("random", True), ("bayesian", True), ("grid", True), ("asha", True),
                                               ("hyperband", False), ("bohb", False), ("pbt", False)])
def test_trials_reuse_a_finished_trials_ray_actor_unless_the_scheduler_pauses_or_clones_trials(algorithm, reused):
    assert reuse_actors(SweepSettings(results_dir=Path("results"), algorithm=algorithm)) is reused


@pytest.mark.slow
def test_a_report_process_that_cannot_build_the_report_says_so_in_one_line_and_ends(tmp_path):
    report = ReportProcess(tmp_path, "rtdetr", None)   # no trials.csv: nothing to report
    report.draw()
    lines: List[str] = []
    assert report.finish(lines.append) == []
    assert len(lines) == 1 and lines[0].startswith("warning: the sweep report was not written"), lines
    assert report.process.returncode == 0


def test_a_cancelled_report_process_ends_at_once(tmp_path):
    report = ReportProcess(tmp_path, "rtdetr", None)
    started = time.monotonic()
    report.cancel()
    assert report.process.returncode is not None and time.monotonic() - started < 10
    assert not _group_alive(report.process.pid)


@pytest.mark.slow
def test_asha_trials_one_at_a_time_share_a_ray_worker_and_a_stopped_trials_trainer_ends_before_the_next(tmp_path):
    spec = tiny_sweep_spec(tmp_path, epochs=3, train_count=8, val_count=4)
    done = subprocess.run(
        [sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec), "--algorithm", "asha",
         "--max-trials", "4", "--grace-period", "1", "--reduction-factor", "2", "--max-concurrent", "1",
         "--metric", "loss", "--seed", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    automl = tmp_path / "results" / "automl"
    with open(automl / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and "pruned" in {r["status"] for r in rows}, rows

    # A trial stopped when no trial waits for its actor ends with the actor, before it can write its
    # trainer_time.json; every other trial has one.
    files = [Path(row["trial_dir"]) / "trainer_time.json" for row in rows]
    runs = sorted((run for path in files if path.is_file() for run in json.loads(path.read_text())["runs"]),
                  key=lambda run: run["started"])
    assert len(runs) >= 3, runs
    assert len({run["worker_pid"] for run in runs}) < len(runs), "no trial reused a finished trial's Ray actor"
    for before, after in zip(runs, runs[1:]):
        assert after["started"] >= before["ended"], "two trainers ran at once with --max-concurrent 1"
    assert (automl / "report.html").is_file() and f"report: {automl / 'report.html'}" in done.stdout
    timings = json.loads((automl / "timings.json").read_text())
    assert {"report", "report_process", "ray_shutdown_wait", "export"} <= set(timings), timings


def test_a_trial_end_in_trials_csv_that_mlflow_never_got_is_written_on_resume(tmp_path):
    """The driver was killed after trials.csv recorded a trial's end and before MLflow did; Tune does not
    report a finished trial again, so resuming (attach) writes it."""
    from automl.sweep.callback import attach
    from automl.sweep.records import TrialsTable
    from automl.sweep.tracking import SweepTracker

    settings = SweepSettings(results_dir=tmp_path / "results")
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracker.start_sweep("sweep", run_name="sweep", spec={}, space={}, settings={})
    tracker.start_trial("t1", {"train.optim.lr": 0.001})
    table = TrialsTable(tmp_path / "trials.csv")
    record = table.get("t1")
    record.values, record.status, record.best_value, record.best_epoch, record.epochs_run = \
        {"train.optim.lr": 0.001}, "completed", 0.5, 1, 2
    assert tracker.finished_trial_ids() == set()

    attach(settings, table, tracker)
    assert tracker.finished_trial_ids() == {"t1"}
    run = tracker.client.get_run(tracker._children["t1"])
    assert run.data.tags["tao_automl.status"] == "completed" and run.data.metrics["best_val_mAP50"] == 0.5
