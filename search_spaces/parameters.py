"""The typed search space: what a sampler may draw, and what it must leave alone.

A :class:`Parameter` is one searched value with finite bounds or choices. Its
bounds may depend on values drawn earlier (``num_select <= num_queries``,
``crop_max > crop_min``): :meth:`Parameter.bounds` resolves them from the
values known so far, so every sampler (direct, Optuna define-by-run, Ray Tune)
shares one definition of "valid".  :class:`DerivedValue` is computed, never
drawn (TAO's ``/ k`` with ``depends_on``).  :class:`ExcludedParameter` records
why a requested parameter is not searched.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .expressions import Expression


class InfeasibleError(ValueError):
    """No value satisfies a parameter's bounds given the values drawn before it."""


@dataclass(frozen=True)
class Bound:
    """A bound computed from other values: ``expression`` (+/- one step when exclusive)."""

    expression: Expression
    exclusive: bool = False

    def text(self, side: str) -> str:
        op = {("low", False): ">=", ("low", True): ">", ("high", False): "<=", ("high", True): "<"}[(side, self.exclusive)]
        return f"{op} {self.expression.text}"


@dataclass(frozen=True)
class Parameter:
    """One searched parameter.

    ``type`` is ``float``, ``int``, ``categorical`` or ``bool``.  Numbers have
    ``low``/``high`` (inclusive, already narrowed by exclusive conditions),
    ``log`` and, for ints, ``step`` (multiples of ``step``: TAO's ``/ k``).
    Choices (categorical, bool, and ints restricted to powers: TAO's ``^ k``)
    have ``choices`` and optional ``weights``.  ``active_when`` makes the
    parameter conditional on other searched parameters.
    """

    name: str
    type: str
    default: Any = None
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[int] = None
    choices: Optional[Tuple[Any, ...]] = None
    weights: Optional[Tuple[float, ...]] = None
    excluded_values: Tuple[Any, ...] = ()
    low_bounds: Tuple[Bound, ...] = ()
    high_bounds: Tuple[Bound, ...] = ()
    active_when: Dict[str, Tuple[Any, ...]] = field(default_factory=dict)
    condition: str = ""
    reason: str = ""
    notes: Tuple[str, ...] = ()

    @property
    def is_numeric(self) -> bool:
        return self.choices is None and self.type in ("int", "float")

    @property
    def depends_on(self) -> Tuple[str, ...]:
        """Names whose values this parameter needs first."""
        names: List[str] = list(self.active_when)
        for bound in self.low_bounds + self.high_bounds:
            names.extend(bound.expression.names)
        return tuple(dict.fromkeys(names))

    def is_active(self, values: Mapping[str, Any]) -> bool:
        return all(values.get(key) in allowed for key, allowed in self.active_when.items())

    def bounds(self, values: Mapping[str, Any]) -> Tuple[float, float]:
        """The inclusive [low, high] given the values drawn so far.

        Raises InfeasibleError when the interval is empty.
        """
        low, high = self.low, self.high
        unit = 1 if self.type == "int" else 0  # ints: step past an exclusive bound, then align to step
        for bound in self.low_bounds:
            value = bound.expression.evaluate(values)
            if bound.exclusive:
                value = value + unit if unit else math.nextafter(value, math.inf)
            low = max(low, value)
        for bound in self.high_bounds:
            value = bound.expression.evaluate(values)
            if bound.exclusive:
                value = value - unit if unit else math.nextafter(value, -math.inf)
            high = min(high, value)
        if self.type == "int":
            step = self.step or 1
            low = math.ceil(low / step) * step
            high = math.floor(high / step) * step
        if low > high:
            raise InfeasibleError(f"{self.name}: no valid value in [{low}, {high}] with {dict(values)}")
        return low, high

    def allowed_choices(self, values: Mapping[str, Any]) -> Tuple[Tuple[Any, ...], Optional[Tuple[float, ...]]]:
        """Choices (and weights) that satisfy the dynamic bounds (powers under a bound)."""
        if not (self.low_bounds or self.high_bounds) or self.type not in ("int", "float"):
            return self.choices, self.weights
        low, high = self._choice_bounds(values)
        keep = [i for i, c in enumerate(self.choices) if low <= c <= high]
        if not keep:
            raise InfeasibleError(f"{self.name}: none of {self.choices} lies in [{low}, {high}]")
        weights = tuple(self.weights[i] for i in keep) if self.weights else None
        return tuple(self.choices[i] for i in keep), weights

    def _choice_bounds(self, values: Mapping[str, Any]) -> Tuple[float, float]:
        widened = Parameter(name=self.name, type=self.type, low=-math.inf, high=math.inf,
                            low_bounds=self.low_bounds, high_bounds=self.high_bounds)
        return widened.bounds(values)

    def describe_range(self) -> str:
        """``[1e-05, 0.001]`` / ``{a: 0.4, b: 0.6}`` / ``[64, 1024] step 8`` (the scale is shown apart)."""
        if self.choices is not None:
            if self.weights:
                return "{" + ", ".join(f"{c}: {w:g}" for c, w in zip(self.choices, self.weights)) + "}"
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        text = f"[{self.low:g}, {self.high:g}]"
        if self.step and self.step > 1:
            text += f" step {self.step}"
        return text

    def to_json(self) -> Dict[str, Any]:
        item: Dict[str, Any] = {"name": self.name, "type": self.type, "log": self.log, "default": self.default}
        if self.choices is not None:
            item["choices"] = list(self.choices)
            if self.weights:
                item["weights"] = list(self.weights)
        else:
            item["low"], item["high"] = self.low, self.high
            if self.step and self.step > 1:
                item["step"] = self.step
        if self.excluded_values:
            item["excluded_values"] = list(self.excluded_values)
        if self.condition:
            item["condition"] = self.condition
        if self.active_when:
            item["active_when"] = {k: list(v) for k, v in self.active_when.items()}
        item["reason"] = self.reason
        if self.notes:
            item["notes"] = list(self.notes)
        return item


@dataclass(frozen=True)
class DerivedValue:
    """A value computed from others (TAO's ``/ k`` with ``depends_on``), clipped to the schema bounds."""

    name: str
    type: str
    expression: Expression
    low: Optional[float] = None
    high: Optional[float] = None
    reason: str = ""

    def compute(self, values: Mapping[str, Any]) -> Any:
        value = self.expression.evaluate(values)
        if self.low is not None:
            value = max(value, self.low)
        if self.high is not None and not math.isinf(self.high):
            value = min(value, self.high)
        return int(value) if self.type == "int" else float(value)

    def to_json(self) -> Dict[str, Any]:
        return {"name": self.name, "type": self.type, "derived": f"= {self.expression.text}",
                "condition": f"= {self.expression.text}", "log": False, "reason": self.reason}


@dataclass(frozen=True)
class ExcludedParameter:
    """A requested parameter that is not searched, and why."""

    name: str
    reason: str

    def to_json(self) -> Dict[str, Any]:
        return {"name": self.name, "reason": self.reason}


@dataclass(frozen=True)
class SearchSpace:
    """Parameters in sampling order (parents first), derived values, exclusions.

    ``base_values`` holds every schema/spec value by dotted name: the values a
    parameter's bounds and conditions read when the key is not searched.
    """

    parameters: Tuple[Parameter, ...]
    derived: Tuple[DerivedValue, ...] = ()
    excluded: Tuple[ExcludedParameter, ...] = ()
    base_values: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def names(self) -> Tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def parameter(self, name: str) -> Parameter:
        for candidate in self.parameters:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    def to_json(self) -> Dict[str, Any]:
        return {"parameters": [p.to_json() for p in self.parameters],
                "derived": [d.to_json() for d in self.derived],
                "excluded": [e.to_json() for e in self.excluded]}
