"""What every fault test needs: run a real sweep, look at the processes, and check that nothing was lost.

``assert_nothing_lost`` is issue 9's expected result, the same for every fault: the sweep finished;
every trial is in trials.csv exactly once and in MLflow exactly once (child runs by
``tao_automl.trial_id``) with the same status and reason; no half-written file (``*.tmp``) is left;
every ``.pth`` loads with ``load_checkpoint``; no process of the sweep is still running.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

from trainers.rtdetr.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def run_sweep(spec: Path, schema: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``tao-automl sweep --algorithm grid --seed 0`` on ``spec`` with ``schema`` as its search-space schema, run
    in the spec's folder (a grid: one trial per choice, so each choice can carry its own fault)."""
    return subprocess.run(
        [sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec), "--schema", str(schema),
         "--algorithm", "grid", "--seed", "0", *args],
        cwd=spec.parent, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def schema_with(path: Path, key: str, **changes) -> Path:
    """The skill's train schema with the property ``key`` (dotted) updated by ``changes``, written to ``path``."""
    document = json.loads((ROOT / "trainers/rtdetr/skill/schemas/train.schema.json").read_text())
    node = document
    for part in key.split("."):
        node = node["properties"][part]
    node.update(changes)
    path.write_text(json.dumps(document))
    return path


def trials_rows(results: Path) -> List[Dict[str, str]]:
    with open(results / "automl/trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def trainer_starts(trial_dir: Path) -> int:
    """How many times a trainer started in a trial's folder (status.json's STARTED records)."""
    lines = read_text(trial_dir / "train/status.json").splitlines()
    return sum(json.loads(line)["status"] == "STARTED" for line in lines if line.strip())


def trainer_pids(spec_file: Path) -> List[int]:
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


def sweep_processes(results: Path):
    """Any live process (zombies aside) whose command line mentions this sweep's folder."""
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


def mlflow_children(results: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'automl/mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tao-automl").experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def assert_nothing_lost(results: Path, rows: List[Dict[str, str]], leftovers: Sequence[str] = (),
                        pruning: bool = False) -> None:
    """Issue 9's expected result after any fault (see the module docstring).  ``leftovers``: ``*.tmp`` files
    found earlier (e.g. on a tmpfs that is gone by now); ``pruning``: the sweep's scheduler stops trials."""
    assert len({r["trial_id"] for r in rows}) == len(rows), "a trial has two rows in trials.csv"
    assert {p.name for p in (results / "automl/trials").iterdir()} == {r["trial_id"] for r in rows}, \
        "a trial folder has no row in trials.csv"
    ended = ("completed", "failed", "pruned") if pruning else ("completed", "failed")
    assert all(r["status"] in ended for r in rows), rows
    assert all(r["reason"] for r in rows if r["status"] in ("failed", "pruned")), "a trial ended with no reason"

    children = mlflow_children(results)
    assert sorted(c.data.tags["tao_automl.trial_id"] for c in children) == sorted(r["trial_id"] for r in rows)
    for child in children:
        row = next(r for r in rows if r["trial_id"] == child.data.tags["tao_automl.trial_id"])
        assert child.data.tags["tao_automl.status"] == row["status"]
        assert child.data.tags.get("tao_automl.reason", "") == " ".join(row["reason"].split())[:1000]
        assert child.info.status == {"completed": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}[row["status"]]
        assert child.data.metrics["attempts"] == float(row["attempts"])

    half_written = [*leftovers, *(str(p.relative_to(results)) for p in results.rglob("*.tmp"))]
    assert not half_written, f"a half-written file was left: {half_written}"
    checkpoints = list(results.rglob("*.pth"))
    assert checkpoints, "a completed trial keeps its best checkpoint"
    for path in checkpoints:
        assert "model" in load_checkpoint(path), path
    deadline = time.monotonic() + 10   # the trainers are gone; give Ray's own workers a moment to exit
    while sweep_processes(results) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not sweep_processes(results), sweep_processes(results)
