"""The Pareto front of a two-objective sweep (val_mAP50 up, latency_ms down): the trials no other
trial beats on both.

A trial is on the front when it finished with both numbers (completed or
interrupted with a best epoch; never failed) and no other such trial is at
least as good on both objectives and better on one.  The front is written to
``results_dir/automl/pareto.csv`` (columns ``trial_id``, the metric,
``latency_ms``, then the trial's checkpoint), fastest first, so each row is a
deployable trade-off.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import List, Sequence

from trainers.atomic_write import write_text_atomic

from .records import TrialRecord
from .trial import BEST_CHECKPOINT

PARETO_FILE = "pareto.csv"
FRONT_STATUSES = ("completed", "interrupted")


def _scored(record: TrialRecord) -> bool:
    return (record.status in FRONT_STATUSES and record.best_value is not None and math.isfinite(record.best_value)
            and record.latency_ms is not None and math.isfinite(record.latency_ms))


def dominates(a: TrialRecord, b: TrialRecord, mode: str = "max") -> bool:
    """``a`` is at least as good as ``b`` on the metric (``mode``) and on latency (lower), better on one."""
    sign = 1.0 if mode == "max" else -1.0
    value_a, value_b = sign * a.best_value, sign * b.best_value
    return (value_a >= value_b and a.latency_ms <= b.latency_ms
            and (value_a > value_b or a.latency_ms < b.latency_ms))


def pareto_front(records: Sequence[TrialRecord], mode: str = "max") -> List[TrialRecord]:
    """The non-dominated trials, fastest first (ties: the better metric first)."""
    candidates = [r for r in records if _scored(r)]
    front = [r for r in candidates if not any(dominates(other, r, mode) for other in candidates if other is not r)]
    sign = -1.0 if mode == "max" else 1.0
    return sorted(front, key=lambda r: (r.latency_ms, sign * r.best_value, r.trial_id))


def front_winner(front: Sequence[TrialRecord], mode: str = "max") -> TrialRecord:
    """The exported winner of a two-objective sweep: the most accurate point of the front (the faster
    one on a tie).  Without a budget no latency was asked for, so accuracy decides; every other front
    point stays in pareto.csv with its checkpoint."""
    sign = 1.0 if mode == "max" else -1.0
    return max(front, key=lambda r: (sign * r.best_value, -r.latency_ms))


def write_pareto(front: Sequence[TrialRecord], path: Path, metric: str = "val_mAP50") -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial_id", metric, "latency_ms", "latency_runtime", "checkpoint"])
    for record in front:
        checkpoint = Path(record.trial_dir) / BEST_CHECKPOINT if record.trial_dir else ""
        writer.writerow([record.trial_id, record.best_value, f"{record.latency_ms:.3f}", record.latency_runtime,
                         str(checkpoint)])
    write_text_atomic(path, buffer.getvalue())
    return path


def format_front(front: Sequence[TrialRecord], metric: str = "val_mAP50") -> str:
    """The front as console lines, fastest first."""
    lines = [f"Pareto front ({len(front)} trial{'s' if len(front) != 1 else ''}: {metric} vs latency):"]
    for record in front:
        lines.append(f"  {record.trial_id}  {metric} {record.best_value:.4f}  latency {record.latency_ms:.2f} ms "
                     f"({record.latency_runtime})")
    return "\n".join(lines)


def keep_front(table, settings, tracker=None, log=print):
    """A two-objective sweep's end: pareto.csv written, the front logged to MLflow; returns the winner
    (:func:`front_winner`, None without a front) and the files to keep with the sweep."""
    front = pareto_front(list(table.records.values()), settings.mode)
    if not front:
        return None, []
    path = write_pareto(front, settings.automl_dir / PARETO_FILE, settings.metric)
    if tracker is not None:
        tracker.log_pareto_front([{"trial_id": r.trial_id, "value": r.best_value, "latency_ms": r.latency_ms}
                                  for r in front], path)
    return front_winner(front, settings.mode), [path]
