"""An Optuna study rebuilt from trials.csv, so the charts need neither Ray nor the live searcher.

Each trial becomes a ``FrozenTrial`` with the sweep's sampled values and the
search space's distributions (from the MLflow parent run's
``search_space.json``; inferred from the values seen when it is missing), so
Optuna's plots draw log-scaled parameters on log axes and its importance
evaluators see the real ranges.

States follow the sweep (DESIGN.md decision 4): a trial that ran all its
epochs is COMPLETE with its best value; one a scheduler stopped (or a sweep
interrupted) is PRUNED, carrying its per-epoch values as intermediate values;
a failed trial is FAIL.  Optuna's charts and importances use COMPLETE trials.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence

import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)
from optuna.trial import TrialState

from ..records import TrialRecord
from .sweep_folder import SweepFolder

TRIAL_ID_ATTR = "trial_id"


def distributions_for(folder: SweepFolder) -> Dict[str, BaseDistribution]:
    """Each sampled parameter's distribution, widened to hold every value the trials actually took."""
    seen: Dict[str, List[Any]] = {name: [] for name in folder.parameter_names}
    for record in folder.records:
        for name in folder.parameter_names:
            if name in record.values:
                seen[name].append(record.values[name])
    declared = {p["name"]: p for p in (folder.space or {}).get("parameters", [])}
    distributions = {}
    for name, values in seen.items():
        if not values:
            continue
        distribution = _declared(declared.get(name), values) or _inferred(values)
        if distribution is not None:
            distributions[name] = distribution
    return distributions


def _declared(parameter: Optional[Mapping[str, Any]], values: Sequence[Any]) -> Optional[BaseDistribution]:
    if not parameter:
        return None
    if "choices" in parameter:
        choices = list(parameter["choices"])
        choices += [v for v in dict.fromkeys(values) if v not in choices]
        return CategoricalDistribution(choices)
    if any(not _is_number(v) for v in values):
        return None
    try:
        low = min(float(parameter["low"]), *map(float, values))
        high = max(float(parameter["high"]), *map(float, values))
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    log = bool(parameter.get("log")) and low > 0
    if parameter.get("type") == "int" and all(float(v).is_integer() for v in values):
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(low, high, log=log)


def _inferred(values: Sequence[Any]) -> Optional[BaseDistribution]:
    """No declared space: numbers span their observed range (log when positive over a decade or more)."""
    if all(_is_number(v) for v in values):
        low, high = min(map(float, values)), max(map(float, values))
        if low == high:
            return CategoricalDistribution([values[0]])
        log = low > 0 and high / low >= 10
        if all(isinstance(v, int) for v in values):
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(low, high, log=log)
    return CategoricalDistribution(list(dict.fromkeys(values)))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Optional[float]) -> bool:
    return value is not None and math.isfinite(value)


def _params(record: TrialRecord, distributions: Mapping[str, BaseDistribution]) -> Dict[str, Any]:
    params = {}
    for name, distribution in distributions.items():
        if name not in record.values:   # a conditional parameter that was not active in this trial
            continue
        value = record.values[name]
        if isinstance(distribution, IntDistribution):
            value = int(value)
        elif isinstance(distribution, FloatDistribution):
            value = float(value)
        params[name] = value
    return params


def _intermediate(folder: SweepFolder, record: TrialRecord) -> Dict[int, float]:
    values = {}
    for epoch in folder.epochs(record):
        value = epoch.get(folder.metric)
        if _is_number(value) and math.isfinite(value) and _is_number(epoch.get("epoch")):
            values[int(epoch["epoch"])] = float(value)
    if not values and _finite(record.best_value):
        values[max(0, record.epochs_run - 1)] = float(record.best_value)
    return values


def rebuild_study(folder: SweepFolder) -> optuna.Study:
    """The sweep's single-objective study (``folder.metric``, in the sweep's direction)."""
    distributions = distributions_for(folder)
    study = optuna.create_study(direction="maximize" if folder.mode == "max" else "minimize")
    for record in folder.records:
        params = _params(record, distributions)
        used = {name: distributions[name] for name in params}
        common = dict(params=params, distributions=used, user_attrs={TRIAL_ID_ATTR: record.trial_id})
        if record.status == "completed" and _finite(record.best_value):
            trial = optuna.trial.create_trial(state=TrialState.COMPLETE, value=float(record.best_value),
                                              intermediate_values=_intermediate(folder, record), **common)
        elif record.status in ("pruned", "interrupted", "running") and _finite(record.best_value):
            trial = optuna.trial.create_trial(state=TrialState.PRUNED,
                                              intermediate_values=_intermediate(folder, record), **common)
        else:
            trial = optuna.trial.create_trial(state=TrialState.FAIL, **common)
        study.add_trial(trial)
    return study


def rebuild_pareto_study(folder: SweepFolder) -> Optional[optuna.Study]:
    """Two objectives (``folder.metric``; latency_ms minimised) over the trials pareto.py ranks (completed
    or interrupted, with a latency); None when no trial was measured."""
    if not folder.has_latency():
        return None
    study = optuna.create_study(directions=["maximize" if folder.mode == "max" else "minimize", "minimize"])
    distributions = distributions_for(folder)
    for record in folder.records:
        latency = folder.latency(record)
        if record.status not in ("completed", "interrupted") or not _finite(record.best_value) or latency is None:
            continue
        params = _params(record, distributions)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.add_trial(optuna.trial.create_trial(
                values=[float(record.best_value), latency], params=params,
                distributions={name: distributions[name] for name in params},
                user_attrs={TRIAL_ID_ATTR: record.trial_id}))
    return study


def completed(study: optuna.Study) -> List[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
