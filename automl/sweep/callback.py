"""The driver's view of the trials (a Ray Tune callback): trials.csv, MLflow, the console, clean-up.

Everything here runs in the driver process only, so MLflow's SQLite store
has a single writer (DESIGN.md decision 5).  A trial's end is recorded in
``final.json`` in its folder as soon as the driver hears of it; a trial with
that file is never trained again (see :mod:`.trial`).
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict

from ray.tune import Callback

from search_spaces.optuna_space import without_helper_parameters
from trainers.atomic_write import write_text_atomic

from .records import TrialRecord, TrialsTable
from .settings import LATENCY_METRIC, SweepSettings
from .tidy import tidy_in_background
from .trial import FINAL_FILE, OVER_BUDGET, RERUN_OF, TIME_ATTR, read_epochs

Log = Callable[[str], None]


# The driver's live table and tracker by results folder.  Ray pickles the callback with the run
# configuration and unpickles it on --resume, so the callback carries only the settings and finds
# the live objects of this driver process here.
_LIVE: Dict[str, tuple] = {}


def attach(settings: SweepSettings, table: TrialsTable, tracker=None, log: Log = print) -> None:
    """Give this process's callbacks for ``settings`` their table, tracker and log."""
    _LIVE[str(settings.results_dir)] = (table, tracker, log)
    forget_untrained_trials(settings, table, tracker)
    if tracker is not None:
        record_missing_trial_ends(table, tracker)


def forget_untrained_trials(settings: SweepSettings, table: TrialsTable, tracker=None) -> None:
    """On resume: a trial the killed driver had just started (trials.csv, MLflow) but that trained no epoch
    is forgotten, its folder too.  Tune's saved state may not hold it (the kill came before Tune's experiment
    checkpoint), and then its searcher proposes that configuration again under a new trial id; if Tune does
    hold it, it starts again under its own id and is recorded afresh.  Nothing was trained, so nothing is
    lost."""
    untrained = [record.trial_id for record in table.records.values()
                 if not record.finished and not record.epochs_run and not read_epochs(settings.trials_dir / record.trial_id)]
    for trial_id in untrained:
        del table.records[trial_id]
        shutil.rmtree(settings.trials_dir / trial_id, ignore_errors=True)
        if tracker is not None:
            tracker.forget_trial(trial_id)
    if untrained:
        table.save()


def record_missing_trial_ends(table: TrialsTable, tracker) -> None:
    """On resume: trials.csv holds trial ends MLflow never got (a driver killed between the two writes of
    :meth:`SweepCallback._finish`); Tune does not report those trials again, so they are written now."""
    finished = [record for record in table.records.values() if record.finished]
    if not finished:
        return
    in_mlflow = tracker.finished_trial_ids()
    for record in finished:
        if record.trial_id not in in_mlflow:
            if record.values:
                tracker.start_trial(record.trial_id, record.values, run_name=record.trial_id)
            tracker.finish_trial(record.trial_id, status=record.status, best_value=record.best_value,
                                 best_epoch=record.best_epoch, epochs_run=record.epochs_run,
                                 wall_seconds=record.wall_seconds, reason=record.reason, attempts=record.attempts)


class SweepCallback(Callback):
    def __init__(self, settings: SweepSettings):
        self.settings = settings
        self._started: Dict[str, float] = {}

    def __getstate__(self):
        return {"settings": self.settings}

    def __setstate__(self, state):
        self.settings, self._started = state["settings"], {}

    @property
    def table(self) -> TrialsTable:
        return _LIVE[str(self.settings.results_dir)][0]

    @property
    def tracker(self):
        return _LIVE[str(self.settings.results_dir)][1]

    def log(self, line: str) -> None:
        _LIVE[str(self.settings.results_dir)][2](line)

    # -- Ray Tune hooks -------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        record = self.table.get(trial.trial_id)
        if record.finished:   # replayed after --resume: already recorded
            return
        record.values = trial_values(trial.config)
        record.rerun_of = str(trial.config.get(RERUN_OF) or "")
        record.trial_dir = str(self.settings.trials_dir / trial.trial_id)
        record.status = "running"
        record.attempts = trial.run_metadata.num_failures + 1   # a retry starts the trial again
        self._started.setdefault(trial.trial_id, time.monotonic() - record.wall_seconds)
        self.table.save()
        if self.tracker is not None:
            self.tracker.start_trial(trial.trial_id, record.values, run_name=trial.trial_id, rerun_of=record.rerun_of)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        record = self.table.get(trial.trial_id)
        if record.finished:
            return
        if result.get(LATENCY_METRIC) is not None:   # measured once, carried by every result of the trial
            record.latency_ms = float(result[LATENCY_METRIC])
            record.latency_runtime = str(result.get("latency_runtime") or "")
        if result.get(OVER_BUDGET):   # stopped before training: nothing to rank, only the latency to keep
            if self.tracker is not None:
                self.tracker.log_epoch(trial.trial_id, {LATENCY_METRIC: record.latency_ms}, step=0)
            return
        value = result.get(self.settings.metric)
        epoch = int(result.get("epoch", result.get(TIME_ATTR, 1) - 1))
        record.epochs_run = max(record.epochs_run, epoch + 1)
        if isinstance(value, (int, float)) and self.settings.better(float(value), record.best_value):
            record.best_value, record.best_epoch = float(value), epoch
        if self.tracker is not None:
            self.tracker.log_epoch(trial.trial_id, epoch_metrics(result), step=epoch)

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        if last.get(OVER_BUDGET):
            self._finish(trial, "over_budget", f"latency {float(last.get(LATENCY_METRIC, 0)):.2f} ms > budget "
                                               f"{self.settings.latency_budget_ms:g} ms; not trained")
            return
        status = "completed" if int(last.get(TIME_ATTR, 0)) >= self.settings.max_epochs else "pruned"
        self._finish(trial, status, "" if status == "completed" else
                     f"stopped by the {self.settings.algorithm} scheduler after {last.get(TIME_ATTR, 0)} epochs")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "failed", error_reason(trial))

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.log(f"trial {trial.trial_id} failed ({error_reason(trial)}); retrying")

    # -- helpers ---------------------------------------------------------------------------------
    def _finish(self, trial, status: str, reason: str) -> None:
        record = self.table.get(trial.trial_id)
        if record.finished:
            return
        if not record.values:
            record.values = trial_values(trial.config)
        record.status, record.reason = status, reason
        started = self._started.pop(trial.trial_id, None)
        if started is not None:
            record.wall_seconds = time.monotonic() - started
        folder = self.settings.trials_dir / trial.trial_id
        record.trial_dir = str(folder)
        catch_up_epochs(record, folder, self.settings, int((trial.last_result or {}).get(TIME_ATTR, 0)))
        if folder.is_dir():
            write_text_atomic(folder / FINAL_FILE, json.dumps(
                {"status": status, "epochs_run": record.epochs_run, "best_value": record.best_value,
                 "best_epoch": record.best_epoch, "reason": reason}))
            tidy_in_background(folder, self.settings.delete_intermediate_checkpoints)
        self.table.save()
        if self.tracker is not None:
            self.tracker.finish_trial(trial.trial_id, status=status, best_value=record.best_value,
                                      best_epoch=record.best_epoch, epochs_run=record.epochs_run,
                                      wall_seconds=record.wall_seconds, reason=reason,
                                      attempts=record.attempts)
        self.log(progress_line(record, self.table, self.settings))


def catch_up_epochs(record: TrialRecord, folder: Path, settings: SweepSettings, epochs_done: int) -> None:
    """Fold the trial's first ``epochs_done`` epochs, from its folder, into its record.

    After ``--resume``, Ray restarts an unfinished HyperBand, BOHB or PBT trial from its last checkpoint,
    and the trial reports only the epochs after it.  The killed driver had seen the earlier ones, but
    trials.csv is written when a trial starts and ends, so the record would miss them: its best value and
    epoch would be those of the epochs after the checkpoint.  Ties go to the earlier epoch, as when the
    epochs arrive in order."""
    for line in read_epochs(folder):
        epoch, value = int(line["epoch"]), line.get(settings.metric)
        if epoch >= epochs_done:
            break
        record.epochs_run = max(record.epochs_run, epoch + 1)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        tied_earlier = value == record.best_value and record.best_epoch is not None and epoch < record.best_epoch
        if settings.better(float(value), record.best_value) or tied_earlier:
            record.best_value, record.best_epoch = float(value), epoch


def trial_values(config: Dict[str, Any]) -> Dict[str, Any]:
    """The sampled values of a trial (helper parameters and inactive ``None`` values left out)."""
    return {k: v for k, v in without_helper_parameters(dict(config)).items() if v is not None}


def epoch_metrics(result: Dict[str, Any]) -> Dict[str, float]:
    skip = {"epoch", "global_step", "training_iteration", "timestamp", "time_this_iter_s", "time_total_s",
            "time_since_restore", "iterations_since_restore", "pid", "done", TIME_ATTR}
    return {k: float(v) for k, v in result.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def error_reason(trial) -> str:
    """The one-line reason of a failed trial, from Ray's error file (our TrialFailed message)."""
    text = ""
    error_file = getattr(trial, "error_file", None)
    if error_file and Path(error_file).is_file():
        text = Path(error_file).read_text(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "TrialFailed:" in line:
            return line.split("TrialFailed:", 1)[1].strip()[:500]
    return (lines[-1][:500] if lines else "the trial's worker died")


def progress_line(record: TrialRecord, table: TrialsTable, settings: SweepSettings) -> str:
    finished = len(table.finished())
    value = "-" if record.best_value is None else f"{record.best_value:.4f}"
    best = table.best(settings.mode)
    best_text = "" if best is None else f" | best so far {best.best_value:.4f} ({best.trial_id})"
    shown = ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in sorted(record.values.items()))
    reason = f" [{record.reason}]" if record.status in ("failed", "over_budget") else ""
    if record.latency_ms is not None:
        value += f" latency {record.latency_ms:.1f} ms"
    return (f"[{finished}/{settings.max_trials}] {record.trial_id} {record.status:<9} {settings.metric} {value} "
            f"epochs {record.epochs_run} {record.wall_seconds:.0f}s  {shown}{reason}{best_text}")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
