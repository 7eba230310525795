"""The sweep benchmarks' harness: the synthetic task and one watched ``tao-automl sweep`` run.

bench_sweep.py's two parts (overhead, search quality) both run the real
command as a child process on the drawn shapes with the tiny preset, and read
every trial's metrics.jsonl as it appears.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from automl.sweep.trial import read_epochs  # noqa: E402
from tests.learning.tiny_preset import shapes_spec  # noqa: E402

SIZE = 64
BATCH = 8
POLL_SECONDS = 0.2
METRIC = "val_mAP50"
VAL_IMAGES = 32


def load() -> str:
    """The 1-minute load average, printed next to timings: on shared cores absolute seconds move with it."""
    return f"{os.getloadavg()[0]:.1f}"


# ---------------------------------------------------------------------------------------------- the task
def one_class(data: Dict[str, Path]) -> Dict[str, Path]:
    """Every shape one category ("shape", id 1): a task the tiny preset learns in a few epochs at 64 px, so
    that a few epochs separate good settings from bad ones (with three shape classes at 64 px even a good
    learning rate stays near 0.1 val_mAP50 after 8 epochs)."""
    for split in ("train", "val"):
        coco = json.loads(Path(data[split]).read_text())
        coco["categories"] = [{"id": 1, "name": "shape", "supercategory": "shape"}]
        for annotation in coco["annotations"]:
            annotation["category_id"] = 1
        Path(data[split]).write_text(json.dumps(coco))
    return data


def write_task(root: Path, data: Dict[str, Path], *, epochs: int, searched: List[str],
               ranges: Dict[str, dict], train_seed: int, num_classes: int = 3, batch_size: int = BATCH) -> Path:
    """spec.yaml under ``root`` for a sweep of the tiny preset on ``data``; results in ``root/results``."""
    spec = shapes_spec(data, root / "results", size=SIZE, epochs=epochs, batch_size=batch_size, seed=train_seed,
                       num_classes=num_classes)
    if num_classes == 1:
        spec["model"]["num_select"] = spec["model"]["num_queries"] - 1   # < queries x classes (TAO rule)
    spec["dataset"]["workers"] = 1
    # 12 steps an epoch at 96 images: a short warmup, or the first epochs are all warmup.
    spec["train"]["optim"]["warmup_steps"] = 10
    spec["automl"] = {"hyperparameters": list(searched), "range_override": ranges,
                      "automl_delete_intermediate_ckpt": True}
    root.mkdir(parents=True, exist_ok=True)
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------- one sweep
@dataclass
class EpochSeen:
    """One metrics.jsonl line, when the benchmark first saw it (seconds since the sweep command started)."""

    seconds: float
    trial_id: str
    epoch: int
    value: Optional[float]


@dataclass
class SweepRun:
    command: List[str]
    root: Path
    started: float            # time.time() at spawn
    ended: float              # time.time() when the command had exited
    returncode: int
    epochs: List[EpochSeen] = field(default_factory=list)
    stopped_at_epochs: Optional[int] = None   # the budget stop (SIGINT) was sent after this many epochs

    @property
    def wall(self) -> float:
        return self.ended - self.started

    @property
    def automl_dir(self) -> Path:
        return self.root / "results" / "automl"

    def trials(self) -> List[Dict[str, str]]:
        path = self.automl_dir / "trials.csv"
        if not path.is_file():
            return []
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))


def run_sweep_command(spec: Path, flags: List[str], *, budget_epochs: Optional[int] = None,
                      stop_at_value: Optional[float] = None, timeout: float = 7200.0) -> SweepRun:
    """Run ``tao-automl sweep`` on ``spec``, watching each trial's metrics.jsonl; with ``budget_epochs``,
    SIGINT the driver once that many epochs are complete (Ray Tune then stops the trials and the sweep
    finishes as usual: trials.csv, best/, export); with ``stop_at_value``, also once an epoch's METRIC
    reaches it (the epochs still to come could not change when the sweep first reached it)."""
    command = [sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec), *flags]
    root = spec.parent
    trials_dir = root / "results" / "automl" / "trials"
    seen: Dict[str, int] = {}
    run = SweepRun(command=command, root=root, started=time.time(), ended=0.0, returncode=-1)
    with open(root / "sweep.log", "wb") as log:
        process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
        try:
            while True:
                running = process.poll() is None
                for metrics in sorted(trials_dir.glob("*/train/metrics.jsonl")) if trials_dir.is_dir() else []:
                    trial_id = metrics.parent.parent.name
                    for record in read_epochs(metrics.parent.parent)[seen.get(trial_id, 0):]:
                        value = record.get(METRIC)
                        run.epochs.append(EpochSeen(time.time() - run.started, trial_id, int(record["epoch"]),
                                                    None if value is None else float(value)))
                        seen[trial_id] = seen.get(trial_id, 0) + 1
                reached = stop_at_value is not None and any(
                    e.value is not None and e.value >= stop_at_value for e in run.epochs)
                if (run.stopped_at_epochs is None and running
                        and (reached or (budget_epochs is not None and len(run.epochs) >= budget_epochs))):
                    run.stopped_at_epochs = len(run.epochs)
                    process.send_signal(signal.SIGINT)
                if not running:
                    break
                if time.time() - run.started > timeout:
                    raise TimeoutError(f"the sweep in {root} ran over {timeout:.0f}s")
                time.sleep(POLL_SECONDS)
        finally:
            if process.poll() is None:   # only on our own error: end the sweep's whole group
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    run.ended, run.returncode = time.time(), process.returncode
    if run.returncode != 0 and run.stopped_at_epochs is None:
        tail = (root / "sweep.log").read_text(errors="replace").splitlines()[-15:]
        print(f"  the sweep exited with {run.returncode}; its log's end ({root / 'sweep.log'}):\n    "
              + "\n    ".join(tail), flush=True)
    return run
