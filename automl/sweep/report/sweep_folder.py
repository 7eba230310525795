"""A finished (or interrupted) sweep read back from ``results_dir/automl/``, for the report.

Everything the report shows comes from files the sweep leaves, so it can be
rebuilt any time after the sweep (``tao-automl report``), without the live
searcher or Ray:

- ``trials.csv`` (one row a trial; the latency objective adds ``latency_ms`` and
  ``latency_runtime``), read through :class:`~automl.sweep.records.TrialsTable`;
- each trial's ``train/metrics.jsonl`` (the per-epoch curve);
- ``pareto.csv`` (multi-objective sweeps: the front's trial ids);
- ``best/model_best.pth`` and ``best_spec.yaml`` (the winner);
- the MLflow parent run's ``search_space.json`` and ``settings.json`` when the
  tracking store is reachable (the space's distributions and the sweep's metric,
  objective and latency budget); without them the report infers what it needs.
"""
from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from trainers.errors import UserError

from ..records import FIXED_COLUMNS, TrialRecord, TrialsTable
from ..trial import METRICS_FILE

# Columns of trials.csv that describe a trial's outcome, not a sampled value.
LATENCY_COLUMN = "latency_ms"
OUTCOME_COLUMNS = {LATENCY_COLUMN, "latency_runtime"}
DEFAULT_METRIC = "val_mAP50"


@dataclass
class SweepFolder:
    """What the report needs to know about one sweep."""

    results_dir: Path
    automl_dir: Path
    metric: str
    mode: str                                   # "max" or "min"
    columns: List[str]                          # trials.csv header, in file order
    rows: List[Dict[str, str]]                  # trials.csv rows, as written
    records: List[TrialRecord]                  # the same rows, parsed (sampled values without outcome columns)
    parameter_names: List[str]                  # sampled parameters (derived values left out when the space is known)
    space: Optional[Dict[str, Any]] = None      # search_space.json of the MLflow parent run
    settings: Dict[str, Any] = field(default_factory=dict)   # settings.json of the MLflow parent run
    parent_run_id: Optional[str] = None
    tracking_uri: Optional[str] = None
    pareto_ids: Optional[List[str]] = None      # trial ids in pareto.csv

    @property
    def best_checkpoint(self) -> Path:
        return self.automl_dir / "best" / "model_best.pth"

    @property
    def best_spec(self) -> Path:
        return self.automl_dir / "best_spec.yaml"

    @property
    def report_dir(self) -> Path:
        return self.automl_dir / "report"

    @property
    def report_file(self) -> Path:
        return self.automl_dir / "report.html"

    def latency(self, record: TrialRecord) -> Optional[float]:
        """The trial's measured latency in ms (None when not measured)."""
        row = self.row_of(record.trial_id)
        return _finite(row.get(LATENCY_COLUMN)) if row else None

    def has_latency(self) -> bool:
        return any(self.latency(r) is not None for r in self.records)

    def latency_budget(self) -> Optional[float]:
        for key in ("latency_budget_ms", "latency_budget"):
            value = _finite(self.settings.get(key))
            if value is not None and value > 0:
                return value
        return None

    def row_of(self, trial_id: str) -> Optional[Dict[str, str]]:
        for row in self.rows:
            if row.get("trial_id") == trial_id:
                return row
        return None

    def best(self) -> Optional[TrialRecord]:
        """The trial best/ was copied from, by the sweep's own rule: the most accurate trial of pareto.csv
        (the faster on a tie) in a two-objective sweep, else :meth:`TrialsTable.best`."""
        front = [r for r in self.records if r.trial_id in (self.pareto_ids or ()) and r.best_value is not None]
        two_objectives = (self.settings.get("objective") == "map50-latency"
                          and self.settings.get("latency_budget_ms") is None)
        if front and two_objectives:
            sign = 1.0 if self.mode == "max" else -1.0
            return max(front, key=lambda r: (sign * r.best_value, -(self.latency(r) or 0.0)))
        best = TrialsTable(self.automl_dir / "trials.csv", self.metric).best(self.mode)
        return next((r for r in self.records if best is not None and r.trial_id == best.trial_id), None)

    def epochs(self, record: TrialRecord) -> List[Dict[str, Any]]:
        """The trial's metrics.jsonl records (complete lines only)."""
        path = Path(record.trial_dir or self.automl_dir / "trials" / record.trial_id) / METRICS_FILE
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return []
        epochs = []
        for line in lines:
            try:
                epochs.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return epochs


def read_sweep_folder(results_dir: Path, tracking_uri: Optional[str] = None) -> SweepFolder:
    """The sweep in ``results_dir`` (the folder holding ``automl/``, or ``automl/`` itself)."""
    results_dir = Path(results_dir).resolve()
    if results_dir.name == "automl" and (results_dir / "trials.csv").is_file():
        results_dir = results_dir.parent
    automl_dir = results_dir / "automl"
    trials_csv = automl_dir / "trials.csv"
    if not trials_csv.is_file():
        raise UserError(f"{results_dir}: no sweep here ({trials_csv} not found); give the results_dir of a "
                        f"sweep (the folder holding automl/trials.csv)")
    try:
        with open(trials_csv, newline="") as handle:
            reader = csv.DictReader(handle)
            columns, rows = list(reader.fieldnames or []), list(reader)
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise UserError(f"{trials_csv}: cannot read it ({error})") from None
    if "trial_id" not in columns:
        raise UserError(f"{trials_csv}: not a sweep's trials table (no trial_id column)")

    uri = tracking_uri or _default_tracking_uri(automl_dir)
    parent, space, settings = _from_mlflow(uri, results_dir) if uri else (None, None, {})
    metric = str(settings.get("metric") or _metric_from_columns(columns))
    mode = str(settings.get("mode") or ("min" if "loss" in metric.lower() else "max"))
    records = list(TrialsTable(trials_csv, metric).records.values())
    for record in records:
        for name in OUTCOME_COLUMNS:
            record.values.pop(name, None)
    records.sort(key=lambda r: r.trial_id)
    return SweepFolder(results_dir=results_dir, automl_dir=automl_dir, metric=metric, mode=mode, columns=columns,
                       rows=rows, records=records, parameter_names=_parameter_names(columns, metric, space),
                       space=space, settings=settings, parent_run_id=parent, tracking_uri=uri if parent else None,
                       pareto_ids=_pareto_ids(automl_dir / "pareto.csv"))


def _metric_from_columns(columns: List[str]) -> str:
    fixed = set(FIXED_COLUMNS)
    for column in columns:
        if column.startswith("best_") and column not in fixed:
            return column[len("best_"):]
    return DEFAULT_METRIC


def _parameter_names(columns: List[str], metric: str, space: Optional[Dict[str, Any]]) -> List[str]:
    not_parameters = set(FIXED_COLUMNS) | OUTCOME_COLUMNS | {f"best_{metric}"}
    candidates = [c for c in columns if c not in not_parameters]
    if space and space.get("parameters"):
        searched = {p["name"] for p in space["parameters"]}
        return [c for c in candidates if c in searched]
    return candidates


def _pareto_ids(path: Path) -> Optional[List[str]]:
    if not path.is_file():
        return None
    try:
        with open(path, newline="") as handle:
            return [row["trial_id"] for row in csv.DictReader(handle) if row.get("trial_id")]
    except (OSError, csv.Error, KeyError):
        return None


def _default_tracking_uri(automl_dir: Path) -> Optional[str]:
    database = automl_dir / "mlflow.db"
    return f"sqlite:///{database}" if database.is_file() else None


def _from_mlflow(uri: str, results_dir: Path):
    """(parent run id, search_space.json, settings.json) of this sweep's MLflow parent run, or Nones.

    The report never fails because tracking is unreachable: it then infers the space."""
    try:
        from mlflow.tracking import MlflowClient

        from ..tracking import PARENT_TAG, SWEEP_TAG

        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("tao-automl")
        if experiment is None:
            return None, None, {}
        runs = client.search_runs([experiment.experiment_id], f"tags.`{SWEEP_TAG}` = '{results_dir}'",
                                  max_results=10)
        runs = [run for run in runs if PARENT_TAG not in run.data.tags]
        if not runs:
            return None, None, {}
        run_id = runs[0].info.run_id
        loaded = [_artifact_json(client, runs[0], name) for name in ("search_space.json", "settings.json")]
        return run_id, loaded[0], loaded[1] or {}
    except Exception:
        return None, None, {}


def _artifact_json(client, run, name: str) -> Optional[Dict[str, Any]]:
    """A JSON artifact of ``run``: read in place from a local artifact folder, else downloaded."""
    from urllib.parse import urlparse

    try:
        location = urlparse(run.info.artifact_uri)
        if location.scheme in ("", "file"):
            return json.loads((Path(location.path) / name).read_text())
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")   # no progress bar in a report
        with tempfile.TemporaryDirectory(prefix="tao-automl-report-") as scratch:
            return json.loads(Path(client.download_artifacts(run.info.run_id, name, scratch)).read_text())
    except Exception:   # an artifact store we cannot read: the report infers instead
        return None


def _finite(text: Any) -> Optional[float]:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
