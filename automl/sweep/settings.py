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
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from trainers.errors import UserError

ALGORITHMS = ("bayesian", "random", "grid", "asha", "hyperband", "bohb", "pbt")
SAMPLERS = ("tpe", "gp", "random")
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
    if float(values.get("gpus_per_trial", -1)) < 0:
        values["gpus_per_trial"] = 1.0 if gpu_count > 0 else 0.0
    results_dir = spec.get("results_dir") or ""
    if not results_dir:
        raise UserError("results_dir: a sweep needs a results folder (set results_dir in the spec or "
                        "results_dir=PATH)")
    settings = SweepSettings(results_dir=Path(results_dir).resolve(), **values)
    check(settings, gpu_count)
    return settings


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
    if not settings.metric or settings.metric.startswith("-"):
        raise UserError(f"automl.metric: {settings.metric!r} is not a metric name (e.g. val_mAP50)")
