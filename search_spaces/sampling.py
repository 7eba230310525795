"""Draw configurations directly (no study), and check that a configuration is valid.

Used for the first trials of a sweep, by the Ray Tune adapter's custom
samplers, and by the property tests that draw thousands of configurations.
"""
from __future__ import annotations

import bisect
import itertools
import math
import random
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .parameters import InfeasibleError, Parameter, SearchSpace


def sample_configuration(space: SearchSpace, rng: random.Random) -> Dict[str, Any]:
    """One configuration: searched values (active ones only) and derived values, by dotted name."""
    values: Dict[str, Any] = dict(space.base_values)
    drawn: Dict[str, Any] = {}
    for parameter in space.parameters:
        if not parameter.is_active(values):
            continue
        value = draw(parameter, values, rng)
        values[parameter.name] = drawn[parameter.name] = value
    for item in space.derived:
        values[item.name] = drawn[item.name] = item.compute(values)
    return drawn


def draw(parameter: Parameter, values: Mapping[str, Any], rng: random.Random) -> Any:
    """One value of ``parameter`` given the values drawn before it."""
    if parameter.choices is not None:
        choices, weights = parameter.allowed_choices(values)
        return pick_weighted(choices, weights, rng.random())
    low, high = parameter.bounds(values)
    if parameter.type == "int":
        return map_int(parameter, low, high, lambda lo, hi: rng.randint(lo, hi))
    for _ in range(100):
        value = math.exp(rng.uniform(math.log(low), math.log(high))) if parameter.log else rng.uniform(low, high)
        value = min(max(value, low), high)  # exp(log(x)) may round past a bound
        if value not in parameter.excluded_values:
            return value
    raise InfeasibleError(f"{parameter.name}: could not avoid {parameter.excluded_values}")


def pick_weighted(choices: Sequence[Any], weights: Optional[Sequence[float]], u: float) -> Any:
    """The choice at quantile ``u`` in [0, 1) of the (normalised) weights; uniform without weights."""
    if not weights:
        return choices[min(int(u * len(choices)), len(choices) - 1)]
    total = sum(weights)
    cumulative = list(itertools.accumulate(w / total for w in weights))
    return choices[min(bisect.bisect_right(cumulative, u), len(choices) - 1)]


def map_int(parameter: Parameter, low: int, high: int, draw_between) -> int:
    """Draw an int in [low, high] on ``parameter.step`` that avoids its excluded values.

    ``draw_between(lo, hi)`` draws a uniform int index; excluded values are
    skipped by shifting, so every allowed value is equally likely.
    """
    step = parameter.step or 1
    allowed_excluded = sorted(v for v in parameter.excluded_values if low <= v <= high and (v - low) % step == 0)
    count = (high - low) // step + 1 - len(allowed_excluded)
    if count <= 0:
        raise InfeasibleError(f"{parameter.name}: every value in [{low}, {high}] is excluded")
    index = draw_between(0, count - 1)
    value = low + index * step
    for excluded in allowed_excluded:
        if value >= excluded:
            value += step
    return int(value)


def configuration_problems(space: SearchSpace, configuration: Mapping[str, Any]) -> List[str]:
    """Every way ``configuration`` breaks the space's rules (bounds, steps, powers, relations, conditions)."""
    problems: List[str] = []
    values: Dict[str, Any] = dict(space.base_values)
    values.update(configuration)
    for parameter in space.parameters:
        active = parameter.is_active(values)
        if not active:
            if parameter.name in configuration:
                problems.append(f"{parameter.name}: set although inactive ({parameter.active_when})")
            continue
        if parameter.name not in configuration:
            problems.append(f"{parameter.name}: missing")
            continue
        value = configuration[parameter.name]
        try:
            if parameter.choices is not None:
                choices, _ = parameter.allowed_choices(values)
                if value not in choices:
                    problems.append(f"{parameter.name}: {value!r} not in {choices}")
                continue
            low, high = parameter.bounds(values)
        except InfeasibleError as error:
            problems.append(str(error))
            continue
        if not low <= value <= high:
            problems.append(f"{parameter.name}: {value} outside [{low}, {high}]")
        if parameter.type == "int" and (not isinstance(value, int) or (value - low) % (parameter.step or 1)):
            problems.append(f"{parameter.name}: {value} is not an int on step {parameter.step or 1}")
        if value in parameter.excluded_values:
            problems.append(f"{parameter.name}: {value} is excluded")
    for item in space.derived:
        if configuration.get(item.name) != item.compute(values):
            problems.append(f"{item.name}: {configuration.get(item.name)} != {item.expression.text}")
    return problems
