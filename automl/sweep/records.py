"""``trials.csv``: one row a trial, written by the driver each time a trial changes state.

Rows are keyed by trial id, so a trial started again (a retry, ``--resume``)
updates its row instead of adding one; the file is rewritten atomically, so a
driver killed mid-write leaves the previous version.  ``--resume`` reads it
back.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from trainers.atomic_write import write_text_atomic

FIXED_COLUMNS = ["trial_id", "status", "best_value", "best_epoch", "epochs_run", "attempts", "wall_seconds",
                 "reason", "trial_dir"]
STATUSES = ("running", "completed", "pruned", "failed", "interrupted", "over_budget")
# Only when latency is measured (--objective map50-latency): after the outcome columns.
LATENCY_COLUMNS = ["latency_ms", "latency_runtime"]
# Only when ASHA ran a stopped trial's configuration again (schedulers.PromotingASHA): the trial it repeats.
RERUN_COLUMN = "rerun_of"
FINISHED_STATUSES = ("completed", "pruned", "failed", "over_budget")


@dataclass
class TrialRecord:
    trial_id: str
    status: str = "running"
    values: Dict[str, Any] = field(default_factory=dict)
    best_value: Optional[float] = None
    best_epoch: Optional[int] = None
    epochs_run: int = 0
    attempts: int = 1   # 1 + the retries it took (automl_max_retries)
    wall_seconds: float = 0.0
    reason: str = ""
    trial_dir: str = ""
    latency_ms: Optional[float] = None   # the model's deploy latency (latency objective), see sweep/latency.py
    latency_runtime: str = ""
    rerun_of: str = ""   # the trial whose configuration this one repeats

    @property
    def finished(self) -> bool:
        """over_budget: stopped after measuring, never trained (the latency budget was exceeded)."""
        return self.status in FINISHED_STATUSES


class TrialsTable:
    """The sweep's trials by id, mirrored to ``path`` on every :meth:`save`."""

    def __init__(self, path: Path, metric: str = "val_mAP50"):
        self.path, self.metric = Path(path), metric
        self.records: Dict[str, TrialRecord] = {}
        if self.path.is_file():
            self._load()

    def get(self, trial_id: str) -> TrialRecord:
        if trial_id not in self.records:
            self.records[trial_id] = TrialRecord(trial_id)
        return self.records[trial_id]

    def finished(self) -> List[TrialRecord]:
        return [r for r in self.records.values() if r.finished]

    def best(self, mode: str = "max") -> Optional[TrialRecord]:
        """The trial with the best best_value (completed, pruned, or interrupted by a stopped sweep, which
        keeps its best epoch so far; failed trials never win)."""
        scored = [r for r in self.records.values()
                  if r.status in ("completed", "pruned", "interrupted") and r.best_value is not None and math.isfinite(r.best_value)]
        if not scored:
            return None
        # Ties go to a trial that ran to the end, then to the faster model.
        def latency(record: TrialRecord) -> float:
            return record.latency_ms if record.latency_ms is not None else math.inf

        if mode == "min":
            return min(scored, key=lambda r: (r.best_value, r.status != "completed", latency(r)))
        return max(scored, key=lambda r: (r.best_value, r.status == "completed", -latency(r)))

    def mark_interrupted(self) -> None:
        """Trials still running when the sweep stopped (Ctrl+C): kept with their best so far; --resume
        runs them again."""
        for record in self.records.values():
            if record.status == "running":
                record.status, record.reason = "interrupted", "the sweep stopped before this trial ended"

    def columns(self) -> List[str]:
        names = sorted({name for r in self.records.values() for name in r.values})
        fixed = [c if c != "best_value" else f"best_{self.metric}" for c in FIXED_COLUMNS]
        latency = LATENCY_COLUMNS if any(r.latency_ms is not None for r in self.records.values()) else []
        rerun = [RERUN_COLUMN] if any(r.rerun_of for r in self.records.values()) else []
        return fixed[:2] + names + fixed[2:4] + latency + fixed[4:] + rerun   # id, status, values, outcome

    def save(self) -> Path:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        columns = self.columns()
        writer.writerow(columns)
        for record in sorted(self.records.values(), key=lambda r: r.trial_id):
            row = {**record.values, "trial_id": record.trial_id, "status": record.status,
                   f"best_{self.metric}": _number(record.best_value), "best_epoch": _number(record.best_epoch),
                   "epochs_run": record.epochs_run, "attempts": record.attempts,
                   "wall_seconds": f"{record.wall_seconds:.1f}",
                   "reason": record.reason, "trial_dir": record.trial_dir,
                   "latency_ms": "" if record.latency_ms is None else f"{record.latency_ms:.3f}",
                   "latency_runtime": record.latency_runtime, RERUN_COLUMN: record.rerun_of}
            writer.writerow([row.get(c, "") for c in columns])
        write_text_atomic(self.path, buffer.getvalue())
        return self.path

    def _load(self) -> None:
        with open(self.path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        best_column = f"best_{self.metric}"
        fixed = set(FIXED_COLUMNS) | {best_column} | set(LATENCY_COLUMNS) | {RERUN_COLUMN}
        for row in rows:
            record = TrialRecord(
                trial_id=row["trial_id"], status=row.get("status") or "running",
                best_value=_parse(row.get(best_column)), best_epoch=_parse_int(row.get("best_epoch")),
                epochs_run=_parse_int(row.get("epochs_run")) or 0, wall_seconds=_parse(row.get("wall_seconds")) or 0.0,
                reason=row.get("reason") or "", trial_dir=row.get("trial_dir") or "",
                attempts=_parse_int(row.get("attempts")) or 1,
                latency_ms=_parse(row.get("latency_ms")), latency_runtime=row.get("latency_runtime") or "",
                rerun_of=row.get(RERUN_COLUMN) or "",
                values={k: _value(v) for k, v in row.items() if k not in fixed and v != ""})
            self.records[record.trial_id] = record


def _number(value: Any) -> str:
    return "" if value is None else str(value)


def _parse(text: Optional[str]) -> Optional[float]:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _parse_int(text: Optional[str]) -> Optional[int]:
    value = _parse(text)
    return None if value is None else int(value)


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)
