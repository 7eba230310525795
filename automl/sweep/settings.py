"""How a sweep searches: the spec's ``automl.*`` settings, overridden by ``tao-automl sweep`` flags.

Algorithms are a sampler (who proposes a configuration) and a scheduler (who
stops, pauses or perturbs running trials):

=========  =============================  ===================================
algorithm  sampler (Optuna)               scheduler (Ray Tune)
=========  =============================  ===================================
bayesian   TPE (or GP: ``--sampler gp``)  FIFO: every trial to the end
random     Random                         FIFO
grid       Grid over the space            FIFO
asha       TPE                            ASHA (asynchronous successive halving)
hyperband  TPE                            HyperBand (synchronous brackets)
bohb       TPE                            HyperBand for BOHB
pbt        Random start                   Population based training
=========  =============================  ===================================

Objectives (``--objective``, see :mod:`.latency`): ``map50`` ranks trials by val_mAP50 alone;
``map50-latency`` also measures each trial's deploy latency.  With ``--latency-budget-ms`` latency
is a constraint (any algorithm); without a budget the search has two objectives (maximise
val_mAP50, minimise latency_ms), which only the algorithms without a one-metric scheduler can run
(``MULTI_OBJECTIVE_ALGORITHMS``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

from trainers.errors import UserError

ALGORITHMS = ("bayesian", "random", "grid", "asha", "hyperband", "bohb", "pbt")
SAMPLERS = ("tpe", "gp", "random", "nsga2")
OBJECTIVES = ("map50", "map50-latency")
# Algorithms whose scheduler never ranks trials (FIFO): the only ones a two-objective search can use.
MULTI_OBJECTIVE_ALGORITHMS = ("bayesian", "random", "grid")
LATENCY_METRIC = "latency_ms"
# Schedulers that pause or clone trials: they need each epoch's checkpoint.
CHECKPOINTING_ALGORITHMS = ("hyperband", "bohb", "pbt")
EARLY_STOPPING_ALGORITHMS = ("asha", "hyperband", "bohb")


@dataclass(frozen=True)
class SweepSettings:
    """Everything the runner needs besides the spec and the space."""

    results_dir: Path
    algorithm: str = "asha"
    sampler: str = "tpe"
    max_trials: int = 8
    max_epochs: int = 1
    grace_period: int = 1
    reduction_factor: int = 3
    max_concurrent: int = 0           # 0: as many as the resources hold
    seed: int = 0
    metric: str = "val_mAP50"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_retries: int = 1
    delete_intermediate_checkpoints: bool = True
    ray_address: Optional[str] = None
    storage_path: Optional[str] = None
    mlflow_uri: Optional[str] = None
    resume: bool = False
    quantize: bool = False            # the winner also gets an INT8 ONNX model (tao-automl quantize)
    distill_from: Optional[str] = None   # the winner's config is retrained as a student of this teacher
    objective: str = "map50"          # map50 | map50-latency (latency measured per trial, see .latency)
    latency_budget_ms: Optional[float] = None   # latency as a constraint: trials over it stop and never win
    latency_iterations: int = 20      # timed runs per latency measurement (after a few warm-up runs)
    deploy_size: Optional[Tuple[int, int]] = None   # the user's export.input_height x input_width, if set

    @property
    def latency_aware(self) -> bool:
        """Each trial's deploy latency is measured."""
        return self.objective == "map50-latency"

    @property
    def multi_objective(self) -> bool:
        """Two objectives (val_mAP50 up, latency_ms down): latency measured and no budget to constrain."""
        return self.latency_aware and self.latency_budget_ms is None

    @property
    def metrics(self) -> list:
        """The searcher's metric(s): one name, or [metric, latency_ms] for a two-objective search."""
        return [self.metric, LATENCY_METRIC] if self.multi_objective else self.metric

    @property
    def modes(self) -> list:
        return [self.mode, "min"] if self.multi_objective else self.mode

    @property
    def mode(self) -> str:
        """``min`` for a loss, ``max`` for everything else (mAP)."""
        return "min" if "loss" in self.metric.lower() else "max"

    @property
    def automl_dir(self) -> Path:
        return self.results_dir / "automl"

    @property
    def trials_dir(self) -> Path:
        return self.automl_dir / "trials"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{(self.automl_dir / 'mlflow.db').resolve()}"

    @property
    def ray_storage(self) -> str:
        """Where Ray keeps the experiment state (a shared filesystem for clusters)."""
        if self.storage_path and "://" in self.storage_path:   # s3://, gs://: Ray's own filesystems
            return self.storage_path
        return str(Path(self.storage_path).resolve()) if self.storage_path else str((self.automl_dir / "ray").resolve())

    def better(self, value: Optional[float], than: Optional[float]) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if than is None:
            return True
        return value < than if self.mode == "min" else value > than

    def to_json(self) -> dict:
        values = dataclasses.asdict(self)
        values["results_dir"] = str(self.results_dir)
        values["mode"] = self.mode
        return values


# Spec key (automl.*) -> settings field; flags use the field names.
SPEC_KEYS = {
    "automl_algorithm": "algorithm",
    "automl_sampler": "sampler",
    "automl_max_recommendations": "max_trials",
    "automl_grace_period": "grace_period",
    "automl_reduction_factor": "reduction_factor",
    "automl_max_concurrent": "max_concurrent",
    "automl_seed": "seed",
    "metric": "metric",
    "cpus_per_trial": "cpus_per_trial",
    "gpus_per_trial": "gpus_per_trial",
    "automl_max_retries": "max_retries",
    "automl_delete_intermediate_ckpt": "delete_intermediate_checkpoints",
    "automl_objective": "objective",
    "automl_latency_budget_ms": "latency_budget_ms",
}


def settings_from(spec: Mapping[str, Any], flags: Mapping[str, Any], *, gpu_count: int = 0) -> SweepSettings:
    """Settings from a merged spec dict (its ``automl`` section and ``train.num_epochs``) and flags.

    ``flags``: field name -> value, ``None`` meaning "not given".  The epoch
    budget is ``automl_max_epochs`` (``train.num_epochs`` when 0) times
    ``epoch_multiplier``; the grace period scales the same way.
    """
    automl = dict(spec.get("automl") or {})
    values: dict = {}
    for key, field_name in SPEC_KEYS.items():
        if key in automl:
            values[field_name] = automl[key]
    for field_name, value in flags.items():
        if value is not None:
            values[field_name] = value

    multiplier = int(automl.get("epoch_multiplier", 1) or 1)
    max_epochs = int(flags.get("max_epochs") or automl.get("automl_max_epochs") or 0)
    if max_epochs <= 0:
        max_epochs = int(spec.get("train", {}).get("num_epochs", 1))
    values["max_epochs"] = max_epochs * multiplier
    values["grace_period"] = int(values.get("grace_period", 1)) * multiplier
    _latency_values(values, flags)
    if float(values.get("gpus_per_trial", -1)) < 0:
        values["gpus_per_trial"] = 1.0 if gpu_count > 0 else 0.0
    results_dir = spec.get("results_dir") or ""
    if not results_dir:
        raise UserError("results_dir: a sweep needs a results folder (set results_dir in the spec or "
                        "results_dir=PATH)")
    settings = SweepSettings(results_dir=Path(results_dir).resolve(), **values)
    check(settings, gpu_count)
    return settings


def _latency_values(values: dict, flags: Mapping[str, Any]) -> None:
    """The spec's ``automl_latency_budget_ms: 0`` is "no budget" (a flag of 0 is refused by the check);
    a budget makes latency part of the objective unless ``--objective`` says otherwise (then an error)."""
    budget = values.get("latency_budget_ms")
    if budget is not None and flags.get("latency_budget_ms") is None and float(budget) == 0:
        budget = None
    values["latency_budget_ms"] = None if budget is None else float(budget)
    if budget is not None and flags.get("objective") is None:
        values["objective"] = "map50-latency"


def check(settings: SweepSettings, gpu_count: int) -> None:
    """One line naming the setting for each impossible combination."""
    if settings.algorithm not in ALGORITHMS:
        raise UserError(f"--algorithm {settings.algorithm}: expected one of {', '.join(ALGORITHMS)}")
    if settings.sampler not in SAMPLERS:
        raise UserError(f"--sampler {settings.sampler}: expected one of {', '.join(SAMPLERS)}")
    if settings.max_trials < 1:
        raise UserError(f"--max-trials {settings.max_trials}: at least one trial")
    if settings.max_epochs < 1:
        raise UserError(f"automl.automl_max_epochs: a trial needs at least one epoch (got {settings.max_epochs})")
    if settings.algorithm in EARLY_STOPPING_ALGORITHMS and settings.grace_period > settings.max_epochs:
        raise UserError(f"automl.automl_grace_period {settings.grace_period} is longer than a trial "
                        f"({settings.max_epochs} epochs)")
    if settings.reduction_factor < 2:
        raise UserError(f"automl.automl_reduction_factor must be >= 2 (got {settings.reduction_factor})")
    if settings.cpus_per_trial <= 0:
        raise UserError(f"--cpus-per-trial {settings.cpus_per_trial}: a trial needs some CPU")
    if settings.gpus_per_trial > 0 and gpu_count == 0 and not settings.ray_address:
        raise UserError(f"--gpus-per-trial {settings.gpus_per_trial}: this machine has no GPU "
                        f"(use 0, or --ray-address of a cluster with GPUs)")
    if settings.gpus_per_trial > 1 and settings.gpus_per_trial != int(settings.gpus_per_trial):
        raise UserError(f"--gpus-per-trial {settings.gpus_per_trial}: above 1, whole GPUs only")
    if settings.max_retries < 0:
        raise UserError(f"automl.automl_max_retries must be >= 0 (got {settings.max_retries})")
    check_objective(settings)
    if not settings.metric or settings.metric.startswith("-"):
        raise UserError(f"automl.metric: {settings.metric!r} is not a metric name (e.g. val_mAP50)")


def check_objective(settings: SweepSettings) -> None:
    """The objective, the budget and the algorithm must fit together."""
    if settings.objective not in OBJECTIVES:
        raise UserError(f"--objective {settings.objective}: expected one of {', '.join(OBJECTIVES)}")
    budget = settings.latency_budget_ms
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise UserError(f"--latency-budget-ms {budget:g}: a budget must be a positive number of milliseconds")
    if budget is not None and settings.objective != "map50-latency":
        raise UserError(f"--latency-budget-ms {budget:g} needs --objective map50-latency (automl.automl_objective), "
                        f"not {settings.objective}")
    if settings.latency_iterations < 1:
        raise UserError(f"latency_iterations {settings.latency_iterations}: at least one timed run")
    if settings.multi_objective:
        if settings.algorithm not in MULTI_OBJECTIVE_ALGORITHMS:
            raise UserError(
                f"--objective map50-latency without --latency-budget-ms searches two objectives, but the "
                f"{settings.algorithm} scheduler ranks trials by one metric: use --algorithm "
                f"{', '.join(MULTI_OBJECTIVE_ALGORITHMS)}, or give --latency-budget-ms to keep {settings.algorithm}")
        if settings.sampler == "gp":
            raise UserError("--sampler gp: the two-objective search uses tpe (multi-objective TPE) or nsga2")
