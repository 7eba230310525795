"""The search space as an Optuna define-by-run function.

``suggest_configuration(trial, space)`` asks the trial for each active
parameter in dependency order, so bounds that depend on earlier values
(``num_select <= num_queries``) are always met, and conditional parameters
(momentum only with SGD) are only suggested when they matter.

Two cases are not plain ``suggest_*`` calls:

- weighted choices: Optuna's categorical has no prior weights, so the trial
  suggests a quantile ``<name>#quantile`` in [0, 1) and the weights map it to a
  choice (TAO's Bayesian mapping, research report 3.2); under a random
  sampler the choices then follow the weights exactly;
- ints with excluded values (``!= 0``): the trial suggests the value's index
  ``<name>#index`` among the allowed values.

The returned dict always holds the real values, by dotted name.
"""
from __future__ import annotations

from typing import Any, Callable, Dict

import optuna

from .parameters import Parameter, SearchSpace
from .sampling import map_int, pick_weighted

QUANTILE_SUFFIX = "#quantile"
INDEX_SUFFIX = "#index"


def suggest_configuration(trial: optuna.trial.BaseTrial, space: SearchSpace) -> Dict[str, Any]:
    """Suggest one configuration; returns searched (active) and derived values by dotted name."""
    values: Dict[str, Any] = dict(space.base_values)
    chosen: Dict[str, Any] = {}
    for parameter in space.parameters:
        if not parameter.is_active(values):
            continue
        value = _suggest(trial, parameter, values)
        values[parameter.name] = chosen[parameter.name] = value
    for item in space.derived:
        values[item.name] = chosen[item.name] = item.compute(values)
    return chosen


class DefineByRun:
    """The space as a define-by-run function (e.g. Ray Tune's ``OptunaSearch(space=...)``).

    Calling it returns the values that are not plain trial parameters (weighted
    choices, index-mapped ints, derived values); Ray merges them into the
    trial config as constants.  Callers that want every value use
    :func:`suggest_configuration`.  A class, not a closure: Ray pickles the
    searcher with its space to resume a sweep.
    """

    def __init__(self, space: SearchSpace):
        self.space = space

    def __call__(self, trial: optuna.trial.BaseTrial) -> Dict[str, Any]:
        configuration = suggest_configuration(trial, self.space)
        return {name: value for name, value in configuration.items() if name not in trial.params}


def define_by_run(space: SearchSpace) -> Callable[[optuna.trial.BaseTrial], Dict[str, Any]]:
    """:class:`DefineByRun` of ``space``."""
    return DefineByRun(space)


def without_helper_parameters(config: Dict[str, Any]) -> Dict[str, Any]:
    """A trial config (Ray's OptunaSearch passes trial.params through) minus the ``#quantile`` /
    ``#index`` helper parameters (the real values are there already) and any other ``#`` key the sweep
    adds to a config (no parameter name has one)."""
    return {k: v for k, v in config.items() if "#" not in k}


def _suggest(trial: optuna.trial.BaseTrial, parameter: Parameter, values: Dict[str, Any]) -> Any:
    if parameter.choices is not None:
        choices, weights = parameter.allowed_choices(values)
        if weights:
            quantile = trial.suggest_float(parameter.name + QUANTILE_SUFFIX, 0.0, 1.0)
            return pick_weighted(choices, weights, min(quantile, 0.999999999))
        return trial.suggest_categorical(parameter.name, list(choices))
    low, high = parameter.bounds(values)
    if parameter.type == "float":
        value = trial.suggest_float(parameter.name, low, high, log=parameter.log)
        if value in parameter.excluded_values:  # a float hits an excluded point with probability ~0
            value = min(high, value + (high - low) * 1e-9)
        return value
    if parameter.excluded_values:
        return map_int(parameter, int(low), int(high),
                       lambda lo, hi: trial.suggest_int(parameter.name + INDEX_SUFFIX, lo, hi))
    return trial.suggest_int(parameter.name, int(low), int(high), step=parameter.step or 1, log=parameter.log)
