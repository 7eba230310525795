"""MLflow tracking of a sweep: one parent run per sweep, one nested child run per trial.

Only the sweep driver writes (the lead's Ray Tune callback calls this class), so a
SQLite file is safe: the database is created here once, before any trial starts,
which avoids the schema-migration race of several processes opening a fresh file.
Everything goes through an ``MlflowClient`` bound to an explicit URI: never the
fluent global state and never ``MLFLOW_RUN_ID`` (mlflow #15713).

Resume is idempotent: the parent is found by its ``tao_automl.sweep_id`` tag, a
child by its ``tao_automl.trial_id`` tag, and epochs a child already holds are not
logged twice.
"""
from __future__ import annotations

import json
import logging
import math
import re
import shlex
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Union

import yaml
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH

from trainers.errors import UserError

from .mlflow_store import seed_new_store

SWEEP_TAG = "tao_automl.sweep_id"
TRIAL_TAG = "tao_automl.trial_id"
STATUS_TAG = "tao_automl.status"
REASON_TAG = "tao_automl.reason"
RERUN_TAG = "tao_automl.rerun_of"   # the trial whose configuration this one repeats (ASHA)
PARENT_TAG = "mlflow.parentRunId"
SECRET_MARKERS = ("encryption_key", "token", "password", "secret", "api_key")
MASK = "*****"
TRIAL_STATUSES = {"completed": "FINISHED", "pruned": "KILLED", "failed": "FAILED",   # -> MLflow run status
                  "over_budget": "KILLED"}   # over the latency budget: stopped before training
PARETO_TAG = "tao_automl.pareto_front"
SWEEP_STATUSES = {"completed": "FINISHED", "interrupted": "KILLED", "killed": "KILLED", "failed": "FAILED"}
# MLflow already waits 20 s (busy_timeout) inside each write; this bounds the retries on top of it.
LOCK_WAIT_SECONDS = 60.0
DEFAULT_METRIC = "val_mAP50"


class TrackingError(UserError):
    """The tracking store cannot be used (e.g. a SQLite file that stays locked)."""


def mask_secrets(data: Any) -> Any:
    """A copy of ``data`` (nested dicts/lists) with secret-looking values replaced by ``*****``.

    A key is secret when its last dotted component contains encryption_key, token,
    password, secret or api_key (case-insensitive), so both nested specs and
    flattened ``a.b.api_key`` dicts are covered.
    """
    if isinstance(data, dict):
        return {key: MASK if _is_secret_key(key) and value is not None else mask_secrets(value)
                for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [mask_secrets(item) for item in data]
    return data


def _is_secret_key(key: Any) -> bool:
    last = str(key).rsplit(".", 1)[-1].lower()
    return any(marker in last for marker in SECRET_MARKERS)


def flatten(data: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": value}``; lists of dicts are indexed (``sources.0.image_dir``) like overrides."""
    flat: Dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)) and value and any(isinstance(v, dict) for v in value):
            flat.update(flatten({str(i): v for i, v in enumerate(value)}, name + "."))
        else:
            flat[name] = value
    return flat


def sanitize_name(name: str) -> str:
    """A metric/param name MLflow accepts: allowed characters only, no path tricks, <= 250 characters."""
    cleaned = re.sub(r"[^/\w.\- :]", "_", str(name))
    parts = [("_" if part in (".", "..") else part) for part in cleaned.split("/") if part]
    return ("/".join(parts) or "_")[:MAX_ENTITY_KEY_LENGTH]


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_VAL_LENGTH]


def _finite_number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _is_locked(error: Optional[BaseException]) -> bool:
    for _ in range(10):  # the sqlite error sits a few links down the MLflow/SQLAlchemy exception chain
        if error is None:
            return False
        if "database is locked" in str(error) or "database is busy" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


# MLflow logs a full traceback for every locked attempt; SweepTracker._retry reports it once instead.
logging.getLogger("mlflow.store.db.utils").addFilter(lambda record: "database is locked" not in record.getMessage())


class SweepTracker:
    """Writes one sweep to MLflow: the parent run, its trial children, their epochs and results."""

    def __init__(self, tracking_uri: str, experiment_name: str = "tao-automl", *,
                 lock_wait_seconds: float = LOCK_WAIT_SECONDS):
        self.tracking_uri = tracking_uri
        self.lock_wait_seconds = lock_wait_seconds
        self.metric = DEFAULT_METRIC
        self.parent_id: Optional[str] = None
        self._children: Dict[str, str] = {}          # trial id -> run id
        self._logged_steps: Dict[str, Set[int]] = {}  # run id -> epochs already in MLflow
        artifact_location = None
        db_path = sqlite_path(tracking_uri)
        if db_path is not None:
            db_path.parent.mkdir(parents=True, exist_ok=True)
            artifact_location = str(db_path.parent / "mlartifacts")
            seed_new_store(db_path, lambda uri: MlflowClient(tracking_uri=uri).search_experiments(max_results=1))
        # The first store access (in the client's constructor) creates and migrates the SQLite tables:
        # once, here, in the driver, before any trial starts.
        self.client = self._retry(MlflowClient, tracking_uri=tracking_uri)
        self.experiment_id = self._retry(self._experiment_id, experiment_name, artifact_location)

    # -- sweep -------------------------------------------------------------------------------------
    def start_sweep(self, sweep_id: str, *, run_name: str, spec: dict, space: dict, settings: dict) -> str:
        """The parent run for ``sweep_id`` (reused and set RUNNING on resume); logs spec, space, settings."""
        self.metric = str(settings.get("metric") or DEFAULT_METRIC)
        found = self._search(f"tags.`{SWEEP_TAG}` = '{_quote(sweep_id)}'")
        found = [run for run in found if PARENT_TAG not in run.data.tags]
        if found:
            run = found[0]
            self._retry(self.client.update_run, run.info.run_id, status="RUNNING")
            self._children = {r.data.tags[TRIAL_TAG]: r.info.run_id
                              for r in self._search(f"tags.`{PARENT_TAG}` = '{run.info.run_id}'")
                              if TRIAL_TAG in r.data.tags}
        else:
            run = self._retry(self.client.create_run, self.experiment_id, run_name=run_name,
                              tags={SWEEP_TAG: sweep_id, STATUS_TAG: "running"})
        self.parent_id = run.info.run_id
        masked_spec = json.loads(json.dumps(mask_secrets(spec), default=str))  # plain types for safe_dump
        self._log_params(self.parent_id, flatten(masked_spec), existing=run.data.params)
        self._retry(self.client.log_text, self.parent_id, yaml.safe_dump(masked_spec, sort_keys=False), "spec.yaml")
        for name, data in (("search_space.json", space), ("settings.json", settings)):
            text = json.dumps(mask_secrets(data), indent=2, sort_keys=True, default=str)
            self._retry(self.client.log_text, self.parent_id, text, name)
        return self.parent_id

    def finish_sweep(self, *, best: Optional[dict], artifacts: Iterable[Union[str, Path]],
                     status: str = "completed") -> None:
        """Parent summary: best value/epoch/trial as metrics and tags, the sweep's files, run terminated.

        ``best`` holds ``trial_id``, ``value`` (or ``best_<metric>``) and ``epoch``.
        Paths that do not exist (e.g. no TensorRT engine without a GPU) are skipped.
        """
        parent = self._require_parent()
        if status not in SWEEP_STATUSES:
            raise ValueError(f"sweep status {status!r}: expected one of {sorted(SWEEP_STATUSES)}")
        metrics, tags = {}, {STATUS_TAG: status}
        if best:
            value = best.get("value", best.get(f"best_{self.metric}"))
            metrics = {f"best_{self.metric}": value, "best_epoch": best.get("epoch")}
            if best.get("trial_id") is not None:
                tags["tao_automl.best_trial_id"] = str(best["trial_id"])
                child = self._children.get(str(best["trial_id"]))
                if child:
                    tags["tao_automl.best_run_id"] = child
        self._log_metrics(parent, metrics, step=0, tags=tags)
        # A child still open now lost its trial (e.g. the driver was killed and the trial not resumed).
        for run in self._search(f"tags.`{PARENT_TAG}` = '{parent}' and attributes.status = 'RUNNING'"):
            self._log_metrics(run.info.run_id, {}, step=0, tags={STATUS_TAG: "interrupted"})
            self._retry(self.client.set_terminated, run.info.run_id, "KILLED")
        for path in map(Path, artifacts):
            if path.is_dir():
                self._retry(self.client.log_artifacts, parent, str(path), path.name)
            elif path.is_file() and path.suffix in (".yaml", ".yml"):   # a spec (best_spec.yaml): secrets masked like the params
                masked = mask_secrets(yaml.safe_load(path.read_text()))
                self._retry(self.client.log_text, parent, yaml.safe_dump(masked, sort_keys=False), path.name)
            elif path.is_file():
                self._retry(self.client.log_artifact, parent, str(path))
        self._retry(self.client.set_terminated, parent, SWEEP_STATUSES[status])

    def log_pareto_front(self, front: Iterable[dict], path: Union[str, Path, None] = None) -> None:
        """A two-objective sweep's front on the parent run: the ids as a tag, one step per front point
        (fastest first) of ``pareto_<metric>`` and ``pareto_latency_ms``, pareto.csv as an artifact;
        each front trial's child run is tagged ``tao_automl.pareto_front: true``.

        ``front``: dicts with ``trial_id``, ``value`` and ``latency_ms``.
        """
        parent = self._require_parent()
        front = list(front)
        for step, point in enumerate(front):
            self._log_metrics(parent, {f"pareto_{self.metric}": point["value"], "pareto_latency_ms": point["latency_ms"]},
                              step=step)
            child = self._children.get(str(point["trial_id"]))
            if child:
                self._log_metrics(child, {}, step=0, tags={PARETO_TAG: "true"})
        self._log_metrics(parent, {"pareto_front_size": len(front)}, step=0,
                          tags={PARETO_TAG: ",".join(str(p["trial_id"]) for p in front)[:5000]})
        if path is not None and Path(path).is_file():
            self._retry(self.client.log_artifact, parent, str(path))

    # -- trials ------------------------------------------------------------------------------------
    def start_trial(self, trial_id: str, params: dict, *, run_name: Optional[str] = None,
                    rerun_of: str = "") -> str:
        """The child run of ``trial_id``: created once, the same run again on resume (set RUNNING).
        ``rerun_of``: the trial whose configuration it repeats, as a tag."""
        parent = self._require_parent()
        trial_id = str(trial_id)
        run_id = self._children.get(trial_id)  # complete: start_sweep read a resumed sweep's children
        existing: Dict[str, str] = {}
        if run_id is None:
            run = self._retry(self.client.create_run, self.experiment_id, run_name=run_name or f"trial_{trial_id}",
                              tags={PARENT_TAG: parent, TRIAL_TAG: trial_id, STATUS_TAG: "running",
                                    **({RERUN_TAG: rerun_of} if rerun_of else {})})
            run_id = run.info.run_id
            self._logged_steps[run_id] = set()
        else:
            existing = self._retry(self.client.get_run, run_id).data.params
            self._retry(self.client.update_run, run_id, status="RUNNING")
        self._children[trial_id] = run_id
        self._log_params(run_id, flatten(mask_secrets(params)), existing=existing)
        return run_id

    def log_epoch(self, trial_id: str, metrics: dict, step: int) -> None:
        """One epoch's numeric, finite metrics at ``step`` (the epoch); a step logged before is skipped."""
        run_id = self._child(trial_id)
        steps = self._steps(run_id)
        if int(step) in steps:
            return
        self._log_metrics(run_id, metrics, step=int(step))
        steps.add(int(step))

    def finish_trial(self, trial_id: str, *, status: str, best_value, best_epoch, epochs_run: int,
                     wall_seconds: float, reason: str = "", attempts: int = 1) -> None:
        """Summary metrics (best_<metric>, best_epoch, epochs_run, wall_seconds, attempts: 1 + retries), status
        tags, run terminated."""
        if status not in TRIAL_STATUSES:
            raise ValueError(f"trial status {status!r}: expected one of {sorted(TRIAL_STATUSES)}")
        run_id = self._child(trial_id)
        one_line = " ".join(str(reason or "").split())[:1000]
        self._log_metrics(run_id, {f"best_{self.metric}": best_value, "best_epoch": best_epoch,
                                   "epochs_run": epochs_run, "wall_seconds": wall_seconds, "attempts": attempts},
                          step=0,
                          tags={STATUS_TAG: status, REASON_TAG: one_line})
        self._retry(self.client.set_terminated, run_id, TRIAL_STATUSES[status])

    def forget_trial(self, trial_id: str) -> None:
        """Delete a trial's child run (a trial started but never trained; see callback.forget_untrained_trials)."""
        run_id = self._children.pop(str(trial_id), None)
        if run_id is not None:
            self._retry(self.client.delete_run, run_id)

    def finished_trial_ids(self) -> Set[str]:
        """Trial ids whose child run has a final status (completed, pruned or failed) and is terminated: a
        driver killed inside :meth:`finish_trial`, after the status tag and before the run's end, left a
        RUNNING run that the sweep's end would call interrupted (seen in the kill -9 resume test)."""
        parent = self._require_parent()
        return {run.data.tags[TRIAL_TAG] for run in self._search(f"tags.`{PARENT_TAG}` = '{parent}'")
                if run.data.tags.get(STATUS_TAG) in TRIAL_STATUSES and TRIAL_TAG in run.data.tags
                and run.info.status != "RUNNING"}

    def ui_hint(self, results_dir: Union[str, Path]) -> str:
        """The command that opens the MLflow UI on this sweep."""
        command = f"tao-automl ui {shlex.quote(str(results_dir))}"
        default = Path(results_dir).resolve() / "automl" / "mlflow.db"
        if sqlite_path(self.tracking_uri) != default:
            command += f" --tracking-uri {shlex.quote(self.tracking_uri)}"
        return command

    # -- helpers -----------------------------------------------------------------------------------
    def _experiment_id(self, name: str, artifact_location: Optional[str]) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            return self.client.create_experiment(name, artifact_location=artifact_location)
        if experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def _require_parent(self) -> str:
        if self.parent_id is None:
            raise RuntimeError("SweepTracker: call start_sweep before logging trials or finishing the sweep")
        return self.parent_id

    def _child(self, trial_id: str) -> str:
        # A trial reported before start_trial (e.g. one that failed while pending) still gets its child run:
        # tracking must never be the reason a sweep stops.
        return self._children.get(str(trial_id)) or self.start_trial(str(trial_id), {})

    def _steps(self, run_id: str) -> Set[int]:
        """Epochs already logged for a child, read from its metric history the first time it is touched."""
        if run_id not in self._logged_steps:
            steps: Set[int] = set()
            for key in self._retry(self.client.get_run, run_id).data.metrics:
                if key.startswith("best_") or key in ("epochs_run", "wall_seconds", "attempts"):
                    continue
                steps.update(m.step for m in self._retry(self.client.get_metric_history, run_id, key))
            self._logged_steps[run_id] = steps
        return self._logged_steps[run_id]

    def _log_metrics(self, run_id: str, metrics: dict, step: int, tags: Optional[Dict[str, str]] = None) -> None:
        """One batch (one SQLite transaction): the numeric, finite metrics at ``step`` and any tags."""
        now = int(time.time() * 1000)
        entries = [Metric(sanitize_name(key), number, now, step) for key, value in metrics.items()
                   if (number := _finite_number(value)) is not None]
        run_tags = [RunTag(key, value) for key, value in (tags or {}).items()]
        if entries or run_tags:
            self._retry(self.client.log_batch, run_id, metrics=entries, tags=run_tags)

    def _log_params(self, run_id: str, params: Dict[str, Any], existing: Dict[str, str]) -> None:
        # MLflow params are immutable: on resume only keys the run does not hold yet are added.
        entries = {sanitize_name(key): _param_value(value) for key, value in params.items()}
        entries = [Param(key, value) for key, value in entries.items() if key not in existing]
        if entries:
            self._retry(self.client.log_batch, run_id, params=entries)

    def _search(self, filter_string: str) -> List[Any]:
        runs, token = [], None
        while True:
            page = self._retry(self.client.search_runs, [self.experiment_id], filter_string,
                               max_results=1000, order_by=["attributes.start_time ASC"], page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _retry(self, call: Callable, *args, **kwargs):
        """``call`` again with a bounded backoff while SQLite says "database is locked"."""
        deadline = time.monotonic() + self.lock_wait_seconds
        delay = 0.1
        while True:
            try:
                return call(*args, **kwargs)
            except Exception as error:  # MlflowException or raw sqlalchemy OperationalError
                if not _is_locked(error):
                    raise
                if time.monotonic() + delay > deadline:
                    raise TrackingError(
                        f"{self.tracking_uri}: the MLflow database stayed locked for more than "
                        f"{self.lock_wait_seconds:g} s; stop the other program writing to it (another sweep?) "
                        "or pass a tracking server with --mlflow-uri") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)


def sqlite_path(tracking_uri: str) -> Optional[Path]:
    """The database file of a ``sqlite:///`` URI (absolute, resolved), else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).resolve()


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")
