"""Faults during a real sweep (local Ray, tiny trials): the sweep finishes and loses nothing.

One grid sweep over four learning rates, each rate a fault injected from outside:

- ``LR_KILLED``: the trial's trainer gets SIGKILL in its first epoch -> failed, reason "killed by SIGKILL";
- ``LR_REFUSED``: a value the sweep's schema (``--schema``) allows and the trainer's refuses -> the trial raises, its reason
  is the trainer's own error line;
- ``LR_DISK_FULL``: the trial's ``train/`` folder is a 1 MB tmpfs, so its first checkpoint write fails
  with ENOSPC -> failed, reason names the full disk, no half-written checkpoint left;
- ``LR_LOCKED``: while it runs, the test holds an exclusive SQLite lock on mlflow.db for a few seconds ->
  the driver waits and the trial is recorded completed.

Then: every trial is in trials.csv exactly once and in MLflow exactly once (child runs by
``tao_automl.trial_id``), failed trials carry their reason in both, no ``*.tmp`` is left, every ``.pth``
loads with ``load_checkpoint``, and no trainer of this sweep is still running.

Killing the sweep driver itself and ``--resume`` is tested in
``tests/sweep/test_sweep_run.py::test_resume_after_the_driver_is_killed_loses_no_trial_and_runs_none_twice``.
A NaN loss stops the trainer with a ``NonFiniteLossError`` (a UserError line, exit 2:
``tests/engine/test_trainer.py::test_a_nan_loss_stops_training_naming_the_epoch_and_step``); in a sweep that
exit is handled like ``LR_REFUSED``'s.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.sweep.tiny_sweep import tiny_sweep_spec
from trainers.rtdetr.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
LR_KILLED, LR_REFUSED, LR_DISK_FULL, LR_LOCKED = 1.0e-3, 5.0, 2.0e-3, 5.0e-4
LOCK_SECONDS = 4.0


def _trainer_pids(spec_file: Path):
    """Processes running ``automl.cli train`` on ``spec_file`` (the trial's trainer)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"automl.cli" in command and b"train" in command and str(spec_file).encode() in command:
            pids.append(int(entry.name))
    return pids


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _sweep_processes(results: Path):
    """Any process whose command line mentions this sweep's folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if str(results).encode() in command and state != b"Z":
                found.append((int(entry.name), command.replace(b"\0", b" ").decode(errors="replace")[:200]))
    return found


class FaultInjector(threading.Thread):
    """Watches the trials folder and injects each trial's fault (chosen by its learning rate)."""

    def __init__(self, trials: Path, mlflow_db: Path):
        super().__init__(daemon=True)
        self.trials, self.mlflow_db = trials, mlflow_db
        self.stop_event = threading.Event()
        self.mounts, self.done, self.log = [], set(), []

    def run(self):
        while not self.stop_event.is_set():
            for spec_file in self.trials.glob("*/spec.yaml"):
                try:
                    lr = float(yaml.safe_load(spec_file.read_text())["train"]["optim"]["lr"])
                except (OSError, TypeError, KeyError, yaml.YAMLError):
                    continue
                self._inject(lr, spec_file.parent)
            time.sleep(0.1)

    def _inject(self, lr: float, folder: Path):
        key = (folder.name, lr)
        if key in self.done:
            return
        if lr == LR_DISK_FULL:
            train = folder / "train"
            train.mkdir(exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(train)], check=True)
            self.mounts.append(train)
            self.done.add(key)
            self.log.append(f"{folder.name}: tmpfs of 1 MB on train/")
        elif lr == LR_KILLED and "val: " in _text(folder / "train.log") and not (folder / "train/metrics.jsonl").exists():
            pids = _trainer_pids(folder / "spec.yaml")
            if pids:
                time.sleep(1.0)   # the data is loaded ("val: N images"): one second into epoch 0
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                self.done.add(key)
                self.log.append(f"{folder.name}: SIGKILL to {pids}")
        elif lr == LR_LOCKED and (folder / "train/status.json").is_file():
            self.done.add(key)
            threading.Thread(target=self._hold_lock, daemon=True).start()
            self.log.append(f"{folder.name}: exclusive lock on mlflow.db for {LOCK_SECONDS} s")

    def _hold_lock(self):
        connection = sqlite3.connect(self.mlflow_db, timeout=60, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            time.sleep(LOCK_SECONDS)
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    def unmount(self):
        for path in self.mounts:
            subprocess.run(["umount", "-l", str(path)], check=False)


def _rows(results: Path):
    with open(results / "automl/trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _schema_with_lr_choices(path: Path, choices) -> Path:
    """The skill's train schema with lr as a choice of ``choices`` (a grid of one trial each); it allows 5.0,
    which the trainer's own schema (maximum 1.0) refuses."""
    document = json.loads((ROOT / "trainers/rtdetr/skill/schemas/train.schema.json").read_text())
    document["properties"]["train"]["properties"]["optim"]["properties"]["lr"].update(
        maximum=10.0, enum=list(choices))
    path.write_text(json.dumps(document))
    return path


def _can_mount_tmpfs(path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    if mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)
    return mounted


def test_killed_refused_and_disk_full_trials_fail_with_reasons_a_locked_store_waits_and_nothing_is_lost(tmp_path):
    if os.geteuid() != 0 or not _can_mount_tmpfs(tmp_path / "probe"):
        pytest.skip("mounting the tmpfs that fills up needs root with mount rights")
    lrs = [LR_KILLED, LR_REFUSED, LR_DISK_FULL, LR_LOCKED]
    spec = tiny_sweep_spec(tmp_path, epochs=2, train_count=8, val_count=4, searched=("train.optim.lr",))
    schema = _schema_with_lr_choices(tmp_path / "train.schema.json", lrs)
    results = tmp_path / "results"
    (results / "automl").mkdir(parents=True)
    injector = FaultInjector(results / "automl/trials", results / "automl/mlflow.db")
    injector.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec), "--schema", str(schema),
             "--algorithm", "grid", "--max-trials", "4", "--max-concurrent", "2", "--max-retries", "0", "--seed", "0"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
        injector.stop_event.set()
        injector.join(5)
        leftovers = [str(p) for p in results.rglob("*.tmp")]   # looked at before the tmpfs goes away
        on_tmpfs = [p for mount in injector.mounts for p in mount.rglob("*")]
    finally:
        injector.stop_event.set()
        injector.unmount()
    assert done.returncode == 0, (injector.log, done.stdout[-3000:], done.stderr[-3000:])
    assert len(injector.done) == 3, injector.log   # kill, disk full, lock: all injected

    rows = _rows(results)
    by_lr = {float(r["train.optim.lr"]): r for r in rows}
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4 and sorted(by_lr) == sorted(lrs), rows
    assert {p.name for p in (results / "automl/trials").iterdir()} == {r["trial_id"] for r in rows}, "a trial was lost"
    assert by_lr[LR_LOCKED]["status"] == "completed" and int(by_lr[LR_LOCKED]["epochs_run"]) == 2
    assert by_lr[LR_KILLED]["status"] == "failed" and "killed by SIGKILL" in by_lr[LR_KILLED]["reason"]
    assert by_lr[LR_REFUSED]["status"] == "failed" and "train.optim.lr" in by_lr[LR_REFUSED]["reason"]
    assert by_lr[LR_DISK_FULL]["status"] == "failed" and "No space left" in by_lr[LR_DISK_FULL]["reason"]
    assert f"best trial {by_lr[LR_LOCKED]['trial_id']}" in done.stdout

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'automl/mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tao-automl").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(c.data.tags["tao_automl.trial_id"] for c in children) == sorted(r["trial_id"] for r in rows)
    for child in children:
        row = next(r for r in rows if r["trial_id"] == child.data.tags["tao_automl.trial_id"])
        assert child.data.tags["tao_automl.status"] == row["status"]
        assert child.data.tags.get("tao_automl.reason", "") == " ".join(row["reason"].split())[:1000]
        assert child.info.status == ("FINISHED" if row["status"] == "completed" else "FAILED")

    assert not leftovers, leftovers
    assert not [p for p in on_tmpfs if p.suffix in (".pth", ".tmp")], f"half-written checkpoint: {on_tmpfs}"
    checkpoints = list(results.rglob("*.pth"))
    assert checkpoints, "the completed trial kept its best checkpoint"
    for path in checkpoints:
        assert "model" in load_checkpoint(path)
    time.sleep(1.0)
    assert not _sweep_processes(results), _sweep_processes(results)
