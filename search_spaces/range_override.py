"""A user's range for one parameter (``automl.range_override``), checked against the schema.

``{low, high, log, choices, weights, step}``: the user may narrow or move a
range, but never outside what the schema allows (its minimum/maximum, enum
and constant ``math_cond`` comparisons), as TAO's ``automl_range_override``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

from trainers.errors import UserError

from .math_cond import MathCond, compare
from .parameters import Parameter
from .ranges import NotSearchable, normalised_weights
from .schema_reader import SchemaLeaf

OVERRIDE_KEYS = ("low", "high", "log", "choices", "weights", "step")


def apply_range_override(parameter: Parameter, leaf: SchemaLeaf, cond: Optional[MathCond],
                         override: Dict[str, Any]) -> Parameter:
    """A user's ``{low, high, log, choices, weights, step}`` for one parameter, checked against the schema."""
    where = f"automl.range_override.{parameter.name}"
    if not isinstance(override, dict):
        raise UserError(f"{where}: expected a mapping with {', '.join(OVERRIDE_KEYS)}")
    unknown = [k for k in override if k not in OVERRIDE_KEYS]
    if unknown:
        raise UserError(f"{where}.{unknown[0]}: unknown key (use {', '.join(OVERRIDE_KEYS)})")
    changes: Dict[str, Any] = {"notes": ("range set by automl.range_override",)}
    if "choices" in override:
        choices = override["choices"]
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}.choices: expected a non-empty list")
        allowed = leaf.enum if leaf.enum is not None else (parameter.choices if parameter.choices else None)
        for choice in choices:
            if allowed is not None and choice not in allowed:
                raise UserError(f"{where}.choices: {choice!r} is not one of the schema's options {list(allowed)}")
            _check_value(where + ".choices", choice, leaf, cond)
        changes.update(choices=tuple(choices), low=None, high=None, weights=None, step=None, log=False)
        if parameter.type == "float" or (parameter.type == "int" and not all(isinstance(c, int) for c in choices)):
            changes["type"] = "categorical"
    if "weights" in override:
        weights = override["weights"]
        choices = changes.get("choices", parameter.choices)
        if choices is None or not isinstance(weights, list) or len(weights) != len(choices):
            raise UserError(f"{where}.weights: expected one weight per choice")
        try:
            normalised = normalised_weights([float(w) for w in weights])
        except (NotSearchable, TypeError, ValueError):
            raise UserError(f"{where}.weights: weights must be non-negative numbers, one above 0") from None
        changes["weights"] = tuple(normalised) if normalised else None
    for side in ("low", "high"):
        if side in override:
            value = override[side]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{where}.{side}: expected a number, got {value!r}")
            if "choices" in changes or parameter.choices is not None:
                raise UserError(f"{where}.{side}: {parameter.name} is searched over choices, not a range")
            _check_value(f"{where}.{side}", value, leaf, cond)
            changes[side] = int(value) if parameter.type == "int" and float(value).is_integer() else value
    if "log" in override:
        if not isinstance(override["log"], bool):
            raise UserError(f"{where}.log: expected true or false")
        changes["log"] = override["log"]
    if "step" in override:
        if parameter.type != "int" or isinstance(override["step"], bool) or not isinstance(override["step"], int) \
                or override["step"] < 1:
            raise UserError(f"{where}.step: expected a positive integer step for an integer parameter")
        changes["step"] = override["step"]
    result = dataclasses.replace(parameter, **changes)
    if result.choices is None:
        if result.low > result.high:
            raise UserError(f"{where}: low {result.low} is above high {result.high}")
        if result.log and result.low <= 0:
            raise UserError(f"{where}: a log range needs low > 0")
        if result.log and result.step and result.step > 1:
            raise UserError(f"{where}: log and step cannot be combined")
    return result


def _check_value(where: str, value: Any, leaf: SchemaLeaf, cond: Optional[MathCond]) -> None:
    """A user-given bound or choice must itself satisfy the schema."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if leaf.minimum is not None and value < leaf.minimum:
        raise UserError(f"{where}: {value} is below the schema minimum {leaf.minimum}")
    if leaf.maximum is not None and value > leaf.maximum:
        raise UserError(f"{where}: {value} is above the schema maximum {leaf.maximum}")
    for op, bound in (cond.constants if cond else ()):
        if not compare(op, value, bound):
            raise UserError(f"{where}: {value} violates the schema's math_cond '{cond.text}'")
