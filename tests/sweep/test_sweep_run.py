"""Real sweeps on a local Ray: ASHA with pruning, the files a sweep leaves, MLflow, retraining the winner,
and ``--resume`` after the driver was killed with SIGKILL."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import pytest
import yaml

from automl.sweep.torn_state import is_whole
from tests.faults.fault_sweep import assert_nothing_lost

from .tiny_sweep import tiny_sweep_spec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _sweep(spec: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec), *args],
                          cwd=spec.parent, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _rows(results: Path):
    with open(results / "automl" / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _mlflow_children(results: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'automl' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tao-automl")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def test_asha_sweep_prunes_tracks_exports_and_its_best_spec_retrains_the_same(tmp_path):
    spec = tiny_sweep_spec(tmp_path, epochs=3, train_count=8, val_count=4)
    done = _sweep(spec, "--algorithm", "asha", "--max-trials", "4", "--grace-period", "1", "--reduction-factor", "2",
                  "--metric", "loss", "--seed", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "results"
    automl = results / "automl"

    rows = _rows(results)
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    statuses = sorted(r["status"] for r in rows)
    assert set(statuses) <= {"completed", "pruned"} and "completed" in statuses
    assert "pruned" in statuses, f"ASHA (reduction factor 2) stopped no trial: {statuses}"
    for row in rows:
        assert float(row["train.optim.lr"]) > 0 and row["best_loss"]
        kept = sorted(p.name for p in (Path(row["trial_dir"]) / "train").glob("*.pth"))
        assert kept == ["model_best.pth"], "intermediate checkpoints are deleted"
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert all(int(r["epochs_run"]) < 3 for r in pruned)

    for name in ("best_spec.yaml", "best/model_best.pth", "export/model.onnx", "mlflow.db"):
        assert (automl / name).is_file(), name
    assert "ONNX Runtime vs PyTorch" in done.stdout and "tao-automl ui" in done.stdout
    assert "disk used by the sweep" in done.stdout

    client, parents, children = _mlflow_children(results)
    assert len(parents) == 1 and len(children) == 4
    by_trial = {c.data.tags["tao_automl.trial_id"]: c for c in children}
    assert set(by_trial) == {r["trial_id"] for r in rows}
    for row in rows:
        child = by_trial[row["trial_id"]]
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert float(child.data.params["train.optim.lr"]) == pytest.approx(float(row["train.optim.lr"]))
        history = client.get_metric_history(child.info.run_id, "loss")
        assert [m.step for m in history] == list(range(int(row["epochs_run"])))
        assert child.data.metrics["best_loss"] == pytest.approx(float(row["best_loss"]))
        assert child.info.status == ("FINISHED" if row["status"] == "completed" else "KILLED")

    # The winner's spec retrains to the same numbers (same seed, same thread count as a trial).
    best_spec = yaml.safe_load((automl / "best_spec.yaml").read_text())
    best = min((r for r in rows if r["best_loss"]), key=lambda r: float(r["best_loss"]))
    assert best_spec["train"]["optim"]["lr"] == pytest.approx(float(best["train.optim.lr"]))
    retrain = subprocess.run(
        [sys.executable, "-m", "automl.cli", "train", "--skill", "rtdetr", "-e", str(automl / "best_spec.yaml"),
         f"results_dir={tmp_path / 'retrain'}"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    assert retrain.returncode == 0, retrain.stderr[-2000:]
    again = [json.loads(line) for line in (tmp_path / "retrain/train/metrics.jsonl").read_text().splitlines()]
    original = [json.loads(line) for line in (Path(best["trial_dir"]) / "train/metrics.jsonl").read_text().splitlines()]
    assert len(again) == 3
    for before, after in zip(original, again):
        assert after["val_mAP50"] == pytest.approx(before["val_mAP50"], abs=1e-6)
        assert after["loss"] == pytest.approx(before["loss"], rel=1e-5)


def _starts(results: Path, trial_id: str) -> int:
    """How many times the trainer started in a trial's folder (status.json's STARTED records)."""
    status = results / "automl/trials" / trial_id / "train/status.json"
    return sum(json.loads(line)["status"] == "STARTED" for line in status.read_text().splitlines() if line.strip())


def _saved_asha_state(results: Path):
    """The ASHA state the driver last saved with the experiment (schedulers.SchedulerState), or None.
    Each driver session writes its own file, named by its start time; Ray restores from the newest name."""
    import ray.cloudpickle as ray_pickle

    saved = sorted((results / "automl/ray/sweep").glob("callback-states-*.pkl"))
    if not saved or not is_whole(saved[-1]):   # none yet, or being copied there: the next poll reads it whole
        return None
    states = ray_pickle.loads(saved[-1].read_bytes()).values()
    return next((state["scheduler"] for state in states if state and "scheduler" in state), None)


def test_a_killed_asha_sweep_resumes_with_its_rungs_and_loses_no_trial_and_runs_none_twice(tmp_path):
    spec = tiny_sweep_spec(tmp_path, epochs=2, train_count=8, val_count=4)
    results = tmp_path / "results"
    args = ["--algorithm", "asha", "--max-trials", "3", "--max-concurrent", "1", "--grace-period", "1",
            "--reduction-factor", "2", "--seed", "2"]
    driver = subprocess.Popen([sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec),
                               *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    deadline, before = time.monotonic() + 240, None
    try:
        # The first arrival at epoch 1 stops there to wait for the rung to fill (reduction factor 2):
        # once the saved state holds its result, the driver is killed.
        while time.monotonic() < deadline and not (before and set(before["rungs"][-1][1]) & set(before["ended"])):
            time.sleep(0.5)
            before = _saved_asha_state(results) if (results / "automl/ray/sweep").is_dir() else None
        assert before and before["rungs"][-1][1], "no ASHA state saved in time"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    stopped_before = sorted(set(before["rungs"][-1][1]) & set(before["ended"]))
    # As if the kill came while Ray copied its state to the storage path: the rungs' file is torn there.
    saved = sorted((results / "automl/ray/sweep").glob("callback-states-*.pkl"))[-1]
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    # What a writer killed mid-write leaves (trainers.atomic_write), planted so the clean-up is always tested.
    (results / "automl/.trials.csv.killed01.tmp").write_text("trial_id,sta")
    (results / "automl/trials" / stopped_before[0] / "train/.model_latest.pth.killed02.tmp").write_bytes(b"PK")

    done = _sweep(spec, "--resume", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"the killed driver tore {saved.name}; its session's state was restored" in done.stdout + done.stderr
    after = _saved_asha_state(results)
    # Trials that ended before the kill report nothing again: their epoch-1 results are in the resumed
    # sweep's first rung only because its state was restored (or they were proposed again from it).
    for trial_id in stopped_before:
        assert trial_id in after["rungs"][-1][1] or trial_id in after["requeued"], (trial_id, after)
        assert _starts(results, trial_id) == 1, f"{trial_id} was trained again"
    rows = _rows(results)
    assert len(rows) == 3 and len({r["trial_id"] for r in rows}) == 3
    assert sorted(after["added"]) == sorted(r["trial_id"] for r in rows)
    assert {p.name for p in (results / "automl/trials").iterdir()} == {r["trial_id"] for r in rows}
    assert {r["status"] for r in rows} <= {"completed", "pruned"} and "completed" in {r["status"] for r in rows}
    _, parents, children = _mlflow_children(results)
    assert len(parents) == 1
    assert sorted(c.data.tags["tao_automl.trial_id"] for c in children) == sorted(r["trial_id"] for r in rows)
    assert (results / "automl/export/model.onnx").is_file()
    assert_nothing_lost(results, rows, pruning=True)   # issue 9's expected result, as for every fault in tests/faults


def _saved_trial_statuses(results: Path) -> Dict[str, str]:
    """Each trial's status in the experiment state the driver last saved: what ``--resume`` starts from."""
    saved = sorted((results / "automl/ray/sweep").glob("experiment_state-*.json"))
    try:
        trials = json.loads(saved[-1].read_text())["trial_data"] if saved else []
    except json.JSONDecodeError:   # being written: the next poll reads it whole
        return {}
    return {json.loads(trial)["trial_id"]: json.loads(trial)["status"] for trial, *_ in trials}


def test_hyperband_resumes_with_finished_and_paused_trials_and_ends(tmp_path):
    """A HyperBand bracket halves once all its trials reach the rung.  On --resume Ray adds back the
    finished trials too, and a bracket holding one waited for it forever (the driver spun at 100 % CPU)."""
    spec = tiny_sweep_spec(tmp_path, epochs=4, train_count=8, val_count=4)
    results = tmp_path / "results"
    args = ["--algorithm", "hyperband", "--max-trials", "6", "--reduction-factor", "2", "--seed", "3"]
    command = [sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec), *args]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=environment, start_new_session=True)
    deadline, saved = time.monotonic() + 240, {}
    try:
        while time.monotonic() < deadline and not {"TERMINATED", "PAUSED"} <= set(saved.values()):
            time.sleep(0.5)
            saved = _saved_trial_statuses(results) if (results / "automl/ray/sweep").is_dir() else {}
        assert {"TERMINATED", "PAUSED"} <= set(saved.values()), f"no finished and paused trials saved: {saved}"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    finished_before = [t for t, status in saved.items() if status == "TERMINATED"]
    starts_before = {t: _starts(results, t) for t in finished_before}

    resumed = subprocess.Popen([*command, "--resume"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=environment, start_new_session=True)
    try:
        _, stderr = resumed.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(resumed.pid, signal.SIGKILL)
        resumed.communicate()
        pytest.fail(f"the resumed HyperBand sweep did not end in 300 s (saved before the kill: {saved})")
    assert resumed.returncode == 0, stderr[-3000:]
    rows = _rows(results)
    # None lost, none twice, and the budget finished: trials the driver had not started before the kill
    # (how many it had depends on the machine's load) start after the resume, up to --max-trials.
    ids = [r["trial_id"] for r in rows]
    assert set(saved) <= set(ids) and len(ids) == len(set(ids)) == 6, (sorted(saved), ids)
    assert {r["status"] for r in rows} <= {"completed", "pruned"} and "completed" in {r["status"] for r in rows}
    for trial_id in finished_before:
        assert _starts(results, trial_id) == starts_before[trial_id], f"{trial_id} was trained again"
    for row in rows:
        records = [json.loads(line) for line in
                   (results / "automl/trials" / row["trial_id"] / "train/metrics.jsonl").read_text().splitlines()]
        epochs = [record["epoch"] for record in records]
        assert epochs == list(range(len(epochs))), f"{row['trial_id']} trained an epoch twice: {epochs}"
        if row["status"] == "completed":
            assert int(row["epochs_run"]) == len(epochs) == 4, row
        # Ranked by all its epochs, those before the checkpoint it resumed from too (the first best wins).
        seen = [float(record["val_mAP50"]) for record in records[: int(row["epochs_run"])]]
        assert (float(row["best_val_mAP50"]), int(row["best_epoch"])) == (max(seen), seen.index(max(seen))), row
    _, parents, children = _mlflow_children(results)
    assert len(parents) == 1
    assert sorted(c.data.tags["tao_automl.trial_id"] for c in children) == sorted(ids)
