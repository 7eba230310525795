"""The search space as a Ray Tune ``param_space`` (flat dict keyed by dotted name).

Plain parameters map to Tune's own domains (``uniform``, ``loguniform``,
``randint``, ``qrandint``, ``choice``).  Everything Tune's domains cannot say
(weights, bounds read from another parameter, conditions, excluded values,
derived values) is a ``tune.sample_from`` that draws with the same rules as
:mod:`search_spaces.sampling`, reading the parent values Tune has already
resolved from the trial config.  An inactive conditional parameter resolves to
``None``: the trial then keeps the spec's value.

With Ray's ``OptunaSearch``, use :func:`search_spaces.optuna_space.define_by_run`
instead; this param space is for Tune's own random/grid search and for PBT.
"""
from __future__ import annotations

import random
from typing import Any, Dict

from ray import tune

from .parameters import Parameter, SearchSpace
from .sampling import draw

INACTIVE = None


def ray_param_space(space: SearchSpace, seed: int | None = None) -> Dict[str, Any]:
    """Tune domains by dotted name, for ``Tuner(param_space=...)``."""
    rng = random.Random(seed)
    param_space: Dict[str, Any] = {}
    for parameter in space.parameters:
        param_space[parameter.name] = _domain(parameter, space, rng)
    for item in space.derived:
        param_space[item.name] = tune.sample_from(
            lambda config, item=item: item.compute(_values(space, config, item.expression.names)))
    return param_space


def _is_plain(parameter: Parameter) -> bool:
    return not (parameter.weights or parameter.low_bounds or parameter.high_bounds or parameter.active_when
                or parameter.excluded_values)


def _domain(parameter: Parameter, space: SearchSpace, rng: random.Random) -> Any:
    if _is_plain(parameter):
        if parameter.choices is not None:
            return tune.choice(list(parameter.choices))
        if parameter.type == "float":
            return tune.loguniform(parameter.low, parameter.high) if parameter.log \
                else tune.uniform(parameter.low, parameter.high)
        if parameter.step and parameter.step > 1:
            return tune.qrandint(parameter.low, parameter.high, parameter.step)
        if parameter.log:
            return tune.lograndint(parameter.low, parameter.high + 1)
        return tune.randint(parameter.low, parameter.high + 1)  # Tune's upper bound is exclusive

    def resolve(config, parameter=parameter):
        values = _values(space, config, parameter.depends_on)
        if not parameter.is_active(values):
            return INACTIVE
        return draw(parameter, values, rng)
    return tune.sample_from(resolve)


def _values(space: SearchSpace, config: Any, needed) -> Dict[str, Any]:
    """Base values overlaid with the resolved values of the searched names in ``needed``.

    ``getattr`` on Tune's config guard raises RecursiveDependencyError while a
    parent is still unresolved, and Tune then resolves this one later.
    """
    values = dict(space.base_values)
    searched = set(space.names()) | {item.name for item in space.derived}
    for name in needed:
        if name in searched:
            value = getattr(config, name)
            if value is not INACTIVE:
                values[name] = value
    return values
