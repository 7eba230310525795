"""One trial: write its spec, run the plain trainer as a child process, forward each epoch to Ray Tune.

A trial's folder is ``results_dir/automl/trials/<trial id>/``: ``spec.yaml``,
``train.log`` (the trainer's output), ``train/`` (TAO's training results:
metrics.jsonl, status.json, checkpoints) and, once the driver has recorded
the trial's end, ``final.json``.  With the latency objective, ``latency.json``
(:mod:`.latency`) is measured before training and its ``latency_ms`` goes with
every result; a model over the budget is never trained.

The folder is the trial's memory.  When Ray starts a trial again (a retry,
HyperBand un-pausing it, ``--resume`` after the driver died) the trainer
resumes from ``train/model_latest.pth`` and the epochs already in
metrics.jsonl are reported again, so the scheduler and the searcher see the
whole curve.  A trial whose ``final.json`` exists is finished: its epochs are
replayed and nothing is trained, so no trial runs twice.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from search_spaces.optuna_space import without_helper_parameters
from search_spaces.overrides import apply_values
from trainers.atomic_write import write_text_atomic

from .child import TrainingProcess, training_command
from .latency import Latency, LatencyFailed, trial_latency
from .latency_space import INPUT_SIZE, apply_latency_rules
from .settings import SweepSettings

SPEC_FILE = "spec.yaml"
LOG_FILE = "train.log"
FINAL_FILE = "final.json"
METRICS_FILE = "train/metrics.jsonl"
LATEST_CHECKPOINT = "train/model_latest.pth"
BEST_CHECKPOINT = "train/model_best.pth"
PROGRESS_FILE = "progress.json"
TRAINER_TIME_FILE = "trainer_time.json"
# Ray schedulers count epochs through this result key (not training_iteration, which restarts at 1
# when a trial is started again without a Ray checkpoint).
TIME_ATTR = "epochs_done"
OVER_BUDGET = "over_budget"   # result key of a trial stopped because its model is over the latency budget
RERUN_OF = "#rerun_of"   # config key (no parameter) of a trial that repeats a stopped trial's configuration
POLL_SECONDS = 0.5


class TrialFailed(RuntimeError):
    """The trainer exited with an error; the message is its reason, one line."""


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its sampled values (sent once to the workers)."""

    skill: str
    base_spec: Dict[str, Any]
    settings: SweepSettings
    cwd: str = ""        # the driver's folder: relative paths in the spec are relative to it


def trial_spec(context: TrialContext, values: Dict[str, Any], folder: Path) -> Dict[str, Any]:
    """The base spec with the trial's values, its own results folder and the sweep's epoch budget.

    Validation runs every epoch: the scheduler needs the metric at each rung.
    """
    settings = context.settings
    spec = apply_values(context.base_spec, {k: v for k, v in values.items() if k != INPUT_SIZE})
    if settings.latency_aware:   # input_size -> spatial/export sizes; eval_idx, feat_channels, num_select kept consistent
        apply_latency_rules(spec, values, context.base_spec)
    spec["results_dir"] = str(folder)
    train = spec.setdefault("train", {})
    train["num_epochs"] = settings.max_epochs
    train["validation_interval"] = 1
    train["checkpoint_interval"] = settings.max_epochs   # epoch files only at the end; latest/best always
    train["results_dir"] = ""
    gpus = settings.gpus_per_trial
    if gpus >= 1:
        train["num_gpus"] = int(gpus)
        train["gpu_ids"] = list(range(int(gpus)))   # Ray's CUDA_VISIBLE_DEVICES renumbers from 0
    elif gpus > 0:
        train["num_gpus"], train["gpu_ids"] = 1, [0]
    else:
        train["num_gpus"] = 1
    spec.pop("automl", None)
    return spec


def write_spec(spec: Dict[str, Any], path: Path) -> Path:
    write_text_atomic(path, yaml.safe_dump(spec, sort_keys=False))
    return path


def read_epochs(folder: Path) -> List[Dict[str, Any]]:
    """The complete lines of the trial's metrics.jsonl (a missing file is no epochs)."""
    try:
        text = (folder / METRICS_FILE).read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:   # a line being written: the next poll sees it whole
            break
    return records


def result_of(record: Dict[str, Any], metric: str, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A metrics.jsonl record as a Tune result: numbers only (plus ``extra``: the trial's latency), the
    metric never missing."""
    result = {k: float(v) for k, v in record.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
    result.update(extra or {})
    result["epoch"] = int(record["epoch"])
    result[TIME_ATTR] = int(record["epoch"]) + 1
    if metric not in result:
        raise TrialFailed(f"the trainer reported no {metric!r} for epoch {record['epoch']} "
                          f"(metrics: {', '.join(sorted(result))})")
    return result


def run_trial(config: Dict[str, Any], context: TrialContext) -> None:
    """The Ray Tune function trainable (called in a Ray worker)."""
    from ray import tune

    settings = context.settings
    trial_id = tune.get_context().get_trial_id()
    folder = settings.trials_dir / trial_id
    folder.mkdir(parents=True, exist_ok=True)
    values = {k: v for k, v in without_helper_parameters(config).items() if v is not None}   # None: inactive
    checkpoint = tune.get_checkpoint()
    already_reported = -1
    spec = trial_spec(context, values, folder)
    if checkpoint is not None:
        already_reported = _from_checkpoint(checkpoint, folder, spec, settings)
    spec_file = write_spec(spec, folder / SPEC_FILE)
    cwd = Path(context.cwd) if context.cwd and Path(context.cwd).is_dir() else None

    latency = None
    if settings.latency_aware:   # measured before training: a model over the budget is not worth training
        try:
            latency = trial_latency(spec, spec_file, folder, threads=max(1, int(settings.cpus_per_trial)),
                                    iterations=settings.latency_iterations, fixed_size=settings.deploy_size,
                                    skill=context.skill, cwd=cwd)
        except LatencyFailed as error:
            raise TrialFailed(str(error)) from None
        if latency.over(settings.latency_budget_ms):
            tune.report(over_budget_result(latency, settings))
            return
    extra = latency.result_fields() if latency is not None else {}

    final = folder / FINAL_FILE
    if final.is_file():   # finished before the driver was restarted: replay, do not train again
        recorded = json.loads(final.read_text())
        for record in read_epochs(folder)[: int(recorded.get("epochs_run", 0))]:
            if record["epoch"] > already_reported:
                tune.report(result_of(record, settings.metric, extra))
        return

    env = dict(os.environ)
    threads = str(max(1, int(settings.cpus_per_trial)))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONUNBUFFERED="1")
    started = time.time()
    process = TrainingProcess(training_command(context.skill, spec_file), folder / LOG_FILE, env=env, cwd=cwd)
    try:
        already_reported = _follow(process, folder, settings, already_reported, tune, extra)
        code = process.process.wait()
        already_reported = _follow(process, folder, settings, already_reported, tune, extra)   # the last lines
        if code != 0:
            raise TrialFailed(failure_reason(process.last_lines(), code, process.oom_killer_ran()))
    finally:
        ended = time.time()   # the trainer's own time ends here: the group's clean-up is orchestration
        process.stop()
        _add_trainer_time(folder, started, ended)


def over_budget_result(latency: Latency, settings: SweepSettings) -> Dict[str, Any]:
    """The one result of a trial whose model is over the latency budget: no epoch trained (the scheduler
    records no rung), the metric at its worst (Tune requires it), ``over_budget`` for the driver and the
    searcher (which tells Optuna an infeasible trial)."""
    worst = 0.0 if settings.mode == "max" else float("inf")
    return {settings.metric: worst, TIME_ATTR: 0, OVER_BUDGET: 1.0, **latency.result_fields()}


def _follow(process: TrainingProcess, folder: Path, settings: SweepSettings, reported: int, tune,
            extra: Optional[Dict[str, Any]] = None) -> int:
    """Report new epochs until the trainer exits; returns the last epoch reported."""
    while True:
        running = process.poll() is None
        for record in read_epochs(folder):
            if record["epoch"] <= reported:
                continue
            result = result_of(record, settings.metric, extra)
            if settings.algorithm in ("hyperband", "bohb", "pbt"):
                _report_with_checkpoint(result, folder, settings, tune)
            else:
                tune.report(result)
            reported = record["epoch"]
        if not running:
            return reported
        try:   # like sleep(POLL_SECONDS), but wakes at once when the trainer exits
            process.process.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass


def _report_with_checkpoint(result: Dict[str, Any], folder: Path, settings: SweepSettings, tune) -> None:
    """Schedulers that pause (HyperBand) or clone (PBT) a trial need a checkpoint with each epoch.

    HyperBand only needs the epoch (the trial's folder keeps the weights); PBT's
    clones need the weights themselves.  The trainer writes the metrics line
    after the epoch's checkpoints, so model_latest.pth is this epoch's.
    """
    with tempfile.TemporaryDirectory(prefix="tao-automl-ckpt-") as staging:
        staging = Path(staging)
        (staging / PROGRESS_FILE).write_text(json.dumps({"epoch": int(result["epoch"])}))
        latest = folder / LATEST_CHECKPOINT
        if settings.algorithm == "pbt" and latest.is_file():
            shutil.copy2(latest, staging / "model_latest.pth")
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(staging)))


def _from_checkpoint(checkpoint, folder: Path, spec: Dict[str, Any], settings: SweepSettings) -> int:
    """Ray started this trial from a checkpoint: its own (un-paused) or a donor's (PBT exploit)."""
    with checkpoint.as_directory() as directory:
        directory = Path(directory)
        progress = json.loads((directory / PROGRESS_FILE).read_text())
        weights = directory / "model_latest.pth"
        if settings.algorithm == "pbt" and weights.is_file():
            target = folder / "donor" / "model_latest.pth"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(weights, target)
            # Continue the donor's weights with this trial's (perturbed) values, in a fresh train folder.
            shutil.rmtree(folder / "train", ignore_errors=True)
            spec["train"]["resume_training_checkpoint_path"] = str(target)
            spec["train"]["resume_with_spec_hyperparameters"] = True
    return int(progress["epoch"])


def _add_trainer_time(folder: Path, started: float, ended: float) -> None:
    """``trainer_time.json``: the trainer processes' wall time in this trial (the rest is orchestration), and
    the Ray worker that ran each (``worker_pid``: trials that share one reused their Ray actor)."""
    path = folder / TRAINER_TIME_FILE
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    runs.append({"started": started, "ended": ended, "seconds": ended - started, "worker_pid": os.getpid()})
    write_text_atomic(path, json.dumps({"seconds": sum(r["seconds"] for r in runs), "runs": runs}))


def failure_reason(lines: List[str], code: int, oom_killer_ran: Optional[bool] = None) -> str:
    """One line: the trainer's own error line when it printed one, else the exit status.  ``oom_killer_ran``
    (child.TrainingProcess.oom_killer_ran) tells a SIGKILL from the kernel's OOM killer from any other."""
    if code < 0:
        try:
            import signal
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = ""
        if -code == 9:
            hint = {None: " (out of memory?)",
                    True: " (the kernel's out-of-memory killer ran meanwhile: too little memory for this "
                          "configuration; try a smaller batch_size or input size, or fewer trials at once)",
                    False: " (not by the kernel's out-of-memory killer: another process stopped it)"}[oom_killer_ran]
        return f"the trainer was killed by {name}{hint}"
    for line in reversed(lines):
        if "error" in line.lower() or "Error" in line:
            return line.strip()[:500]
    return f"the trainer exited with code {code}" + (f": {lines[-1].strip()[:300]}" if lines else "")
