"""Who stops, pauses or perturbs running trials: Ray Tune's schedulers, counted in epochs."""
from __future__ import annotations

import random
from typing import Any, Dict

from ray.tune.schedulers import (ASHAScheduler, FIFOScheduler, HyperBandForBOHB, HyperBandScheduler,
                                 PopulationBasedTraining, TrialScheduler)

from search_spaces.parameters import SearchSpace

from .settings import SweepSettings
from .trial import TIME_ATTR

# Parameters PBT may perturb while a trial runs: those a resumed optimizer can take without retraining.
PERTURBABLE = ("train.optim.lr", "train.optim.lr_backbone", "train.optim.weight_decay")


def build_scheduler(settings: SweepSettings, space: SearchSpace) -> TrialScheduler:
    common = dict(time_attr=TIME_ATTR, metric=settings.metric, mode=settings.mode)
    algorithm = settings.algorithm
    if algorithm == "asha":
        return ASHAScheduler(**common, max_t=settings.max_epochs, grace_period=settings.grace_period,
                             reduction_factor=settings.reduction_factor)
    if algorithm == "hyperband":
        return HyperBandScheduler(**common, max_t=settings.max_epochs, reduction_factor=settings.reduction_factor)
    if algorithm == "bohb":
        return HyperBandForBOHB(**common, max_t=settings.max_epochs, reduction_factor=settings.reduction_factor)
    if algorithm == "pbt":
        return PopulationBasedTraining(
            **common, perturbation_interval=max(1, settings.grace_period),
            hyperparam_mutations=pbt_mutations(space, settings.seed), quantile_fraction=0.25,
            resample_probability=0.25, perturbation_factors=(1.25, 0.8), synch=False)
    return FIFOScheduler()


def pbt_mutations(space: SearchSpace, seed: int) -> Dict[str, Any]:
    """Resampling functions for the perturbable parameters the space searches (PBT multiplies them by
    its factors, or draws afresh with ``resample_probability``)."""
    rng = random.Random(seed)
    mutations: Dict[str, Any] = {}
    for parameter in space.parameters:
        if parameter.name not in PERTURBABLE or parameter.choices is not None:
            continue
        low, high = parameter.bounds(space.base_values)
        if parameter.log:
            import math
            mutations[parameter.name] = (lambda lo=low, hi=high: math.exp(rng.uniform(math.log(lo), math.log(hi))))
        else:
            mutations[parameter.name] = (lambda lo=low, hi=high: rng.uniform(lo, hi))
    return mutations
