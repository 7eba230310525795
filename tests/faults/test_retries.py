"""Retries under faults, and a NaN loss inside a sweep (real sweep, local Ray, tiny trials).

A grid sweep over the checkpoint a trial starts from (``train.pretrained_model_path``), with
``automl.automl_max_retries: 2`` in the spec:

- ``healthy.pth``: its trainer gets SIGKILL after epoch 0 on the first attempt only -> retried, the
  trainer resumes from the trial's ``model_latest.pth`` (epoch 0 is not trained again) and the trial
  completes; trials.csv has it once with ``attempts`` 2;
- ``diverged.pth``: weights of a run that diverged (one encoder layer overflowed to inf).  Nothing is
  injected: the forward pass turns the inf into NaN, the trainer's own guard stops with "the training loss
  is not finite at epoch 0, step 0" on every attempt -> failed after max_retries + 1 = 3 attempts, with
  that line as its reason in trials.csv and in MLflow; the sweep goes on and exports the other trial.

(Why not a huge learning rate: the trainer's schema caps train.optim.lr at 1.0, and measured over 2 epochs,
the tiny model's loss stays finite at lr = lr_backbone = 1.0 with AdamW and with SGD, even at batch 1 with
clipping effectively off (clip_grad_norm 1e6): its BatchNorm and LayerNorm layers keep activations bounded.)
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from automl.spec import load_spec
from tests.sweep.tiny_sweep import tiny_sweep_spec
from trainers.rtdetr.checkpoint import save_checkpoint
from trainers.rtdetr.model import build_model

from .fault_sweep import (assert_nothing_lost, read_text, run_sweep, schema_with, trainer_pids, trainer_starts,
                          trials_rows)

pytestmark = pytest.mark.slow
MAX_RETRIES = 2
NAN_LINE = "the training loss is not finite at epoch 0, step 0"


def write_start_checkpoints(spec: Path, folder: Path):
    """``healthy.pth``: the spec's model freshly initialised; ``diverged.pth``: the same with one layer's
    weights overflowed to inf, as a diverged run leaves them."""
    cfg = load_spec("rtdetr", spec, [], "train")
    torch.manual_seed(0)
    state = build_model(cfg.model, num_classes=cfg.dataset.num_classes).state_dict()
    healthy = save_checkpoint({"model": state}, folder / "healthy.pth")
    overflowed = "encoder.encoder.0.layers.0.linear2.weight"   # the first encoder layer's feed-forward output
    assert overflowed in state
    diverged = save_checkpoint({"model": {**state, overflowed: torch.full_like(state[overflowed], float("inf"))}},
                               folder / "diverged.pth")
    return str(healthy), str(diverged)


class KillAfterFirstEpoch(threading.Thread):
    """SIGKILLs the trainer of the trial starting from ``checkpoint`` once, as soon as its epoch 0 is over:
    in metrics.jsonl (written after the epoch's checkpoints, so the retry has a model_latest.pth) and its
    summary line in the trial's train.log (the epoch's last act; a kill between the two would leave the
    log without its epoch 0 line, and the test reads the log)."""

    def __init__(self, trials: Path, checkpoint: str):
        super().__init__(daemon=True)
        self.trials, self.checkpoint = trials, checkpoint
        self.stop_event = threading.Event()
        self.killed = []

    def run(self):
        while not self.stop_event.is_set() and not self.killed:
            for spec_file in self.trials.glob("*/spec.yaml"):
                try:
                    start = yaml.safe_load(spec_file.read_text())["train"]["pretrained_model_path"]
                except (OSError, TypeError, KeyError, yaml.YAMLError):
                    continue
                trial = spec_file.parent
                if (start == self.checkpoint and '"epoch": 0' in read_text(trial / "train/metrics.jsonl")
                        and "epoch 0/" in read_text(trial / "train.log")):
                    for pid in trainer_pids(spec_file):
                        os.kill(pid, signal.SIGKILL)
                        self.killed.append(pid)
            time.sleep(0.1)


def test_a_killed_trial_is_retried_to_completion_and_a_nan_loss_fails_every_attempt_with_its_reason(tmp_path):
    spec = tiny_sweep_spec(tmp_path, epochs=2, train_count=8, val_count=4, searched=("train.pretrained_model_path",),
                           automl={"automl_max_retries": MAX_RETRIES})
    healthy, diverged = write_start_checkpoints(spec, tmp_path)
    schema = schema_with(tmp_path / "train.schema.json", "train.pretrained_model_path", type="categorical",
                         enum=[healthy, diverged], default=healthy, automl_enabled=True)
    results = tmp_path / "results"
    killer = KillAfterFirstEpoch(results / "automl/trials", healthy)
    killer.start()
    try:
        done = run_sweep(spec, schema, "--max-trials", "2", "--max-concurrent", "2")
    finally:
        killer.stop_event.set()
        killer.join(5)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert killer.killed, "the healthy trial's trainer was never killed"

    rows = trials_rows(results)
    by_start = {r["train.pretrained_model_path"]: r for r in rows}
    assert len(rows) == 2 and sorted(by_start) == sorted([healthy, diverged]), rows

    retried = by_start[healthy]
    assert retried["status"] == "completed" and retried["reason"] == "", retried
    assert retried["attempts"] == "2" and int(retried["epochs_run"]) == 2
    trial_dir = Path(retried["trial_dir"])
    assert trainer_starts(trial_dir) == 2
    log = read_text(trial_dir / "train.log")
    assert log.count("epoch 0/1") == 1 and log.count("epoch 1/1") == 1, "the retry resumed after epoch 0"
    assert f"trial {retried['trial_id']} failed (the trainer was killed by SIGKILL" in done.stdout
    assert f"best trial {retried['trial_id']}" in done.stdout and (results / "automl/export/model.onnx").is_file()

    nan = by_start[diverged]
    assert nan["status"] == "failed" and NAN_LINE in nan["reason"], nan
    assert "before any weight update" in nan["reason"], "the hint names the starting weights, not the lr"
    assert nan["attempts"] == str(MAX_RETRIES + 1) and int(nan["epochs_run"]) == 0
    assert trainer_starts(Path(nan["trial_dir"])) == MAX_RETRIES + 1
    assert read_text(Path(nan["trial_dir"]) / "train.log").count(NAN_LINE) == MAX_RETRIES + 1

    assert_nothing_lost(results, rows)
