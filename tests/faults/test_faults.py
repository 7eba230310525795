"""Faults during a real sweep (local Ray, tiny trials): the sweep finishes and loses nothing.

One grid sweep over four learning rates (``--max-retries 0``), each rate a fault injected from outside:

- ``LR_KILLED``: the trial's trainer gets SIGKILL in its first epoch -> failed, reason "killed by SIGKILL";
- ``LR_REFUSED``: a value the sweep's schema (``--schema``) allows and the trainer's refuses -> the trial raises, its reason
  is the trainer's own error line;
- ``LR_DISK_FULL``: the trial's ``train/`` folder is a 1 MB tmpfs, so its first checkpoint write fails
  with ENOSPC -> failed, reason names the full disk, no half-written checkpoint left;
- ``LR_LOCKED``: while it runs, the test holds an exclusive SQLite lock on mlflow.db for a few seconds ->
  the driver waits and the trial is recorded completed.

Then issue 9's expected result (``fault_sweep.assert_nothing_lost``): every trial in trials.csv and in MLflow
exactly once with its status and reason, no ``*.tmp`` left, every ``.pth`` loads, nothing left running.

The other faults: a NaN loss and retries (``automl_max_retries``) in ``test_retries.py``; killing the sweep
driver itself and ``--resume`` in
``tests/sweep/test_sweep_run.py::test_a_killed_asha_sweep_resumes_with_its_rungs_and_loses_no_trial_and_runs_none_twice``.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.sweep.tiny_sweep import tiny_sweep_spec

from .fault_sweep import assert_nothing_lost, read_text, run_sweep, schema_with, trainer_pids, trials_rows

pytestmark = pytest.mark.slow
LR_KILLED, LR_REFUSED, LR_DISK_FULL, LR_LOCKED = 1.0e-3, 5.0, 2.0e-3, 5.0e-4
LOCK_SECONDS = 4.0


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
        elif (lr == LR_KILLED and "val: " in read_text(folder / "train.log")
              and not (folder / "train/metrics.jsonl").exists()):
            pids = trainer_pids(folder / "spec.yaml")
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
    # lr as a choice of the four rates (a grid of one trial each); up to 10, so 5.0 passes the sweep's schema
    # and only the trainer's own (maximum 1.0) refuses it.
    schema = schema_with(tmp_path / "train.schema.json", "train.optim.lr", maximum=10.0, enum=lrs)
    results = tmp_path / "results"
    (results / "automl").mkdir(parents=True)
    injector = FaultInjector(results / "automl/trials", results / "automl/mlflow.db")
    injector.start()
    try:
        done = run_sweep(spec, schema, "--max-trials", "4", "--max-concurrent", "2", "--max-retries", "0")
        injector.stop_event.set()
        injector.join(5)
        leftovers = [str(p) for p in results.rglob("*.tmp")]   # looked at before the tmpfs goes away
        on_tmpfs = [p for mount in injector.mounts for p in mount.rglob("*")]
    finally:
        injector.stop_event.set()
        injector.unmount()
    assert done.returncode == 0, (injector.log, done.stdout[-3000:], done.stderr[-3000:])
    assert len(injector.done) == 3, injector.log   # kill, disk full, lock: all injected

    rows = trials_rows(results)
    by_lr = {float(r["train.optim.lr"]): r for r in rows}
    assert len(rows) == 4 and sorted(by_lr) == sorted(lrs), rows
    assert by_lr[LR_LOCKED]["status"] == "completed" and int(by_lr[LR_LOCKED]["epochs_run"]) == 2
    assert by_lr[LR_KILLED]["status"] == "failed" and "killed by SIGKILL" in by_lr[LR_KILLED]["reason"]
    assert by_lr[LR_REFUSED]["status"] == "failed" and "train.optim.lr" in by_lr[LR_REFUSED]["reason"]
    assert by_lr[LR_DISK_FULL]["status"] == "failed" and "No space left" in by_lr[LR_DISK_FULL]["reason"]
    assert all(r["attempts"] == "1" for r in rows), "--max-retries 0: no trial is started twice"
    assert f"best trial {by_lr[LR_LOCKED]['trial_id']}" in done.stdout
    assert not [p for p in on_tmpfs if p.suffix in (".pth", ".tmp")], f"half-written checkpoint: {on_tmpfs}"
    assert_nothing_lost(results, rows, leftovers)
