"""``automl.*``: how a sweep searches (NVIDIA TAO's setting names where they exist) and how it
changes the schema's default search space.

The default space is the train schema's ``automl_default_parameters``; the
``*_hyperparameters`` keys edit it by dotted parameter path.  Every setting
also has a ``tao-automl sweep`` flag, which wins over the spec.
``automl_policy`` is deliberately not here: it is a workflow argument
(``--automl-policy``), never a spec key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from .fields import param


@dataclass
class AutomlConfig:
    """Sweep settings and edits to the default search space."""

    automl_algorithm: str = param(
        "asha", enum=["bayesian", "random", "grid", "asha", "hyperband", "bohb", "pbt"], automl_enabled=False,
        description="bayesian: Optuna TPE, every trial to the end; random; grid; asha: TPE + asynchronous "
                    "successive halving; hyperband: TPE + HyperBand brackets; bohb: TPE + HyperBand for BOHB; "
                    "pbt: population based training (perturbs lr-like parameters).")
    automl_sampler: str = param("tpe", enum=["tpe", "gp", "random", "nsga2"], automl_enabled=False,
                                description="The Optuna sampler behind bayesian / asha / hyperband (nsga2: NSGA-II).")
    automl_max_recommendations: int = param(8, minimum=1, automl_enabled=False,
                                            description="The number of trials.")
    automl_max_epochs: int = param(0, minimum=0, automl_enabled=False,
                                   description="Epochs of a trial that runs to the end (0: train.num_epochs).")
    epoch_multiplier: int = param(1, minimum=1, automl_enabled=False,
                                  description="Scales automl_max_epochs and the grace period.")
    automl_grace_period: int = param(1, minimum=1, automl_enabled=False,
                                     description="Epochs every trial runs before a scheduler may stop it.")
    automl_reduction_factor: int = param(3, minimum=2, automl_enabled=False,
                                         description="Successive halving keeps 1 / reduction_factor at each rung.")
    automl_max_concurrent: int = param(0, minimum=0, automl_enabled=False,
                                       description="Trials at once (0: as many as the resources hold).")
    automl_seed: int = param(0, minimum=0, automl_enabled=False, description="Seeds the sampler and scheduler.")
    metric: str = param("val_mAP50", automl_enabled=False,
                        description="The metric to optimise (a name containing 'loss' is minimised).")
    cpus_per_trial: float = param(1.0, minimum=0.0, automl_enabled=False, description="CPU cores per trial.")
    gpus_per_trial: float = param(-1.0, minimum=-1.0, automl_enabled=False,
                                  description="GPUs per trial, fractions allowed (-1: 1 when a GPU exists, else 0).")
    automl_max_retries: int = param(1, minimum=0, automl_enabled=False,
                                    description="Times a failed trial is retried before it counts as failed.")
    automl_objective: str = param(
        "map50", enum=["map50", "map50-latency"], automl_enabled=False,
        description="map50: maximise val_mAP50; map50-latency: also measure each trial's deploy latency "
                    "(a constraint with automl_latency_budget_ms, else a second objective to minimise).")
    automl_latency_budget_ms: float = param(
        0.0, minimum=0.0, automl_enabled=False,
        description="Deploy latency budget in ms (0: none); trials over it stop and never win.")
    automl_delete_intermediate_ckpt: bool = param(
        True, automl_enabled=False,
        description="Keep only each trial's best checkpoint (the winner's is copied to automl/best/).")

    hyperparameters: List[str] = param(
        [], automl_enabled=False,
        description="When not empty, search exactly these parameters instead of the schema's defaults.")
    add_hyperparameters: List[str] = param(
        [], automl_enabled=False, description="Parameters to search in addition to the defaults.")
    remove_hyperparameters: List[str] = param(
        [], automl_enabled=False, description="Parameters to leave at their spec value.")
    enable_disabled: List[str] = param(
        [], automl_enabled=False,
        description="Parameters the schema marks automl_enabled: false to search anyway "
                    "(listing one here also adds it to the search).")
    range_override: Dict[str, Dict[str, Any]] = param(
        {}, automl_enabled=False, value_type="collection",
        description="Per parameter: {low, high, log, choices, weights, step} replacing the derived range, "
                    "inside the schema's bounds.")
