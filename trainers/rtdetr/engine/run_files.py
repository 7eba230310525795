"""The files a training run leaves in ``results_dir/train/`` and how they are written.

- ``status.json``: TAO's status log, JSON lines, one record per event, read by
  TAO's ``StatusParser`` and by our sweep.  A record has ``date``, ``time``,
  ``status`` (STARTED / RUNNING / SUCCESS / FAILURE), ``verbosity``,
  ``message``, and for epochs ``epoch`` (0-based, as TAO), ``max_epoch``,
  ``time_per_epoch`` and ``kpi`` whose metric values are **strings** as TAO
  writes them (``{"val_mAP": "0.41", "val_mAP50": "0.62", ...}``).
- ``metrics.jsonl``: one JSON object per epoch (epoch, every loss term, lr,
  val_mAP / val_mAP50 / val_mAP75 or null when not validated, wall seconds).
- checkpoints: ``model_epoch_NNN.pth`` (NNN is the 0-based epoch, TAO's
  naming, which its best-model locator matches), ``model_latest.pth`` and
  ``model_best.pth`` (highest val_mAP50).

Every write goes to a temporary file in the same folder that is then renamed
over the target (``os.replace`` is atomic), so a reader never sees half a line
and a crash never truncates a file.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

from trainers.atomic_write import write_text_atomic

STATUSES = ("STARTED", "RUNNING", "SUCCESS", "FAILURE", "SKIPPED")


def json_safe(value: Any) -> Any:
    """NaN and infinities become null (JSON has no spelling for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: os.PathLike | str, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(json_safe(obj), indent=2) + "\n")


def append_jsonl_atomic(path: os.PathLike | str, record: Mapping[str, Any]) -> Path:
    """Append one JSON line by rewriting the whole file atomically (the files are small: a line per epoch)."""
    path = Path(path)
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    return write_text_atomic(path, existing + json.dumps(json_safe(dict(record))) + "\n")


def read_jsonl(path: os.PathLike | str) -> List[Dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_jsonl(path: os.PathLike | str, keep: Callable[[Dict[str, Any]], bool]) -> None:
    """Keep only the records for which ``keep(record)`` is true (used on resume to drop epochs being redone)."""
    path = Path(path)
    if path.is_file():
        kept = [r for r in read_jsonl(path) if keep(r)]
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))


class StatusLog:
    """``status.json`` in TAO's shape (JSON lines)."""

    def __init__(self, path: os.PathLike | str, max_epoch: int):
        self.path = Path(path)
        self.max_epoch = int(max_epoch)

    def write(self, status: str, message: str, *, epoch: Optional[int] = None,
              kpi: Optional[Mapping[str, Any]] = None, time_per_epoch: Optional[float] = None,
              verbosity: str = "INFO") -> Dict[str, Any]:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        now = time.localtime()
        record: Dict[str, Any] = {
            "date": f"{now.tm_mon}/{now.tm_mday}/{now.tm_year}",
            "time": f"{now.tm_hour}:{now.tm_min:02d}:{now.tm_sec:02d}",
            "status": status,
            "verbosity": verbosity,
            "message": message,
        }
        if epoch is not None:
            record["epoch"] = int(epoch)
            record["max_epoch"] = self.max_epoch
        if time_per_epoch is not None:
            record["time_per_epoch"] = f"{time_per_epoch:.3f}"
            if epoch is not None:
                record["eta"] = f"{max(0, self.max_epoch - epoch - 1) * time_per_epoch:.1f}"
        if kpi:
            # TAO writes metric values as strings; StatusParser converts them back with float().
            record["kpi"] = {key: (str(value) if value is not None else "nan") for key, value in kpi.items()}
        append_jsonl_atomic(self.path, record)
        return record


def epoch_checkpoint_name(epoch: int) -> str:
    """``model_epoch_007.pth`` for the 0-based epoch 7 (TAO's name)."""
    return f"model_epoch_{epoch:03d}.pth"


LATEST_CHECKPOINT = "model_latest.pth"
BEST_CHECKPOINT = "model_best.pth"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"


def train_dir(results_dir: os.PathLike | str, train_results_dir: str = "") -> Path:
    """``train.results_dir`` when set, else ``<results_dir>/train`` (TAO's layout)."""
    if train_results_dir:
        return Path(train_results_dir)
    return Path(results_dir or ".") / "train"


def epoch_checkpoints(folder: os.PathLike | str) -> Iterable[Path]:
    return sorted(Path(folder).glob("model_epoch_*.pth"))
