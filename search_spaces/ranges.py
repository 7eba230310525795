"""From one schema leaf to a searchable range: the rules, stated once.

Where TAO's sampler is unsafe (research report 2.12, 3.2, 3.10), we differ:

1. Learning rates and weight decay are sampled on a log scale, one decade
   either side of the default (lr 1e-4 -> [1e-5, 1e-3]), inside the schema's
   bounds.  TAO samples them linearly on (0, 1).
2. An unbounded side (``maximum: Infinity``, or no ``maximum``/``minimum``)
   becomes a finite band around the default: the maximum is ``2 x default``
   and the minimum ``max(schema minimum, default / 2)`` (batch size 4 ->
   [2, 8]; num_queries 300 -> [150, 600]; dec_layers 6 -> [3, 12]).  With no
   positive default there is no scale, and the parameter is left out with
   that reason until the user gives a range.
3. Every comparison in ``math_cond`` narrows the range (``> 0.0`` makes 0
   unreachable; ``!= 0`` removes 0); ``^ k`` turns an int range into the
   powers of k inside it (k^0 = 1 included); ``/ k`` into the multiples of k.
4. Choices drop the values the trainer does not run (``x_supported_options``).
"""
from __future__ import annotations

import math
import re
from typing import Any, List, Optional, Tuple

from .math_cond import MathCond
from .parameters import Parameter
from .schema_reader import SchemaLeaf

_LR_NAME = re.compile(r"(^|_)(lr|learning_rate)(_|$)")
_NOT_A_RATE = re.compile(r"decay|step|sched|warmup|mult|factor|ratio|gamma|drop|min_lr_ratio")
LOG_DECADES = 1.0  # decades either side of the default for log-scaled parameters
BAND = 2.0  # an unbounded side becomes default * BAND (or default / BAND)


class NotSearchable(Exception):
    """The leaf cannot be turned into a finite, valid range; ``str()`` is the reason."""


def is_log_scaled(name: str) -> bool:
    """Learning rates and weight decay: ``lr``, ``lr_backbone``, ``optm_lr``, ``weight_decay``."""
    last = name.rsplit(".", 1)[-1].lower()
    if "weight_decay" in last:
        return True
    return bool(_LR_NAME.search(last)) and not _NOT_A_RATE.search(last)


def static_parameter(leaf: SchemaLeaf, cond: Optional[MathCond], reason: str) -> Parameter:
    """The parameter a leaf gives before user overrides and cross-parameter bounds."""
    if leaf.kind == "bool":
        choices = tuple(v for v in (False, True) if leaf.supported_options is None or v in leaf.supported_options)
        if len(choices) < 2:
            raise NotSearchable(f"the trainer only runs {_default(leaf)!r} (x_supported_options)".lower())
        return Parameter(name=leaf.name, type="bool", default=_default(leaf), choices=choices, reason=reason)
    if leaf.kind in ("categorical", "ordered_int"):
        return _choice_parameter(leaf, reason)
    if leaf.kind in ("int", "float"):
        return _numeric_parameter(leaf, cond, reason)
    if leaf.kind == "string":
        raise NotSearchable("a free-form string (no enum) cannot be searched")
    raise NotSearchable(f"type {leaf.raw_type!r} cannot be searched")


def _default(leaf: SchemaLeaf) -> Any:
    return leaf.default if leaf.has_default else None


def _choice_parameter(leaf: SchemaLeaf, reason: str) -> Parameter:
    choices = list(leaf.enum or ())
    weights = list(leaf.option_weights) if leaf.option_weights else None
    notes: List[str] = []
    if weights is not None and len(weights) != len(choices):
        notes.append(f"option_weights ignored: {len(weights)} weights for {len(choices)} options")
        weights = None
    if leaf.supported_options is not None:
        keep = [i for i, c in enumerate(choices) if c in leaf.supported_options]
        dropped = [choices[i] for i in range(len(choices)) if i not in keep]
        if dropped:
            notes.append(f"not sampled (not supported by the trainer): {', '.join(map(str, dropped))}")
        choices = [choices[i] for i in keep]
        weights = [weights[i] for i in keep] if weights else None
    if weights is not None:
        weights = normalised_weights(weights)
    if len(choices) < 2:
        raise NotSearchable(f"only {len(choices)} usable option(s): {choices}")
    kind = "int" if leaf.kind == "ordered_int" else "categorical"
    return Parameter(name=leaf.name, type=kind, default=_default(leaf), choices=tuple(choices),
                     weights=tuple(weights) if weights else None, reason=reason, notes=tuple(notes))


def normalised_weights(weights: List[float]) -> Optional[List[float]]:
    """Weights summing to 1; None for uniform (or all-zero) weights."""
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise NotSearchable(f"option_weights {weights} must be finite and not negative")
    total = sum(weights)
    if total <= 0:
        return None
    if all(w == weights[0] for w in weights):
        return None  # uniform: no need to carry weights
    return [w / total for w in weights]


def _numeric_parameter(leaf: SchemaLeaf, cond: Optional[MathCond], reason: str) -> Parameter:
    is_int = leaf.kind == "int"
    default = _default(leaf)
    notes: List[str] = []
    log = is_log_scaled(leaf.name)
    low, high = _finite_bounds(leaf, default, log, notes)
    low_open = high_open = False
    excluded: List[Any] = []
    for op, value in (cond.constants if cond else ()):
        if op in (">", ">=") and value >= low:
            low, low_open = value, op == ">"
        elif op in ("<", "<=") and value <= high:
            high, high_open = value, op == "<"
        elif op == "!=" and low <= value <= high:
            excluded.append(int(value) if is_int else value)
        elif op == "==":
            raise NotSearchable(f"math_cond {cond.text!r} fixes the value")
    if is_int:
        low = math.floor(low) + 1 if low_open and low == math.floor(low) else math.ceil(low)
        high = math.ceil(high) - 1 if high_open and high == math.ceil(high) else math.floor(high)
    else:
        if low_open:
            low = _nudge_up(low, high)
        if high_open:
            high = _nudge_down(high, low)
    if log and low <= 0:
        raise NotSearchable(f"a log range needs a positive minimum, the range is [{low:g}, {high:g}]")
    if low > high:
        raise NotSearchable(f"the range [{low:g}, {high:g}] is empty")
    step, choices = None, None
    if cond and cond.multiple_of and not leaf.depends_on:
        if not is_int:
            raise NotSearchable(f"math_cond {cond.text!r} needs an integer parameter")
        step = cond.multiple_of
        low, high = math.ceil(low / step) * step, math.floor(high / step) * step
        if low > high:
            raise NotSearchable(f"no multiple of {step} in the range")
    if cond and cond.power_of:
        if not is_int:
            raise NotSearchable(f"math_cond {cond.text!r} needs an integer parameter")
        choices = _powers(cond.power_of, low, high)
        if not choices:
            raise NotSearchable(f"no power of {cond.power_of} in [{low}, {high}]")
    if choices is not None:
        return Parameter(name=leaf.name, type="int", default=default, choices=tuple(choices),
                         condition=cond.text, reason=reason, notes=tuple(notes))
    if low == high:
        raise NotSearchable(f"the range holds one value ({low:g})")
    return Parameter(name=leaf.name, type="int" if is_int else "float", default=default,
                     low=int(low) if is_int else float(low), high=int(high) if is_int else float(high), log=log,
                     step=step, excluded_values=tuple(excluded), condition=cond.text if cond else "",
                     reason=reason, notes=tuple(notes))


def _finite_bounds(leaf: SchemaLeaf, default: Any, log: bool, notes: List[str]) -> Tuple[float, float]:
    minimum = leaf.minimum if leaf.minimum is not None and math.isfinite(leaf.minimum) else None
    maximum = leaf.maximum if leaf.maximum is not None and math.isfinite(leaf.maximum) else None
    has_scale = isinstance(default, (int, float)) and not isinstance(default, bool) and default > 0
    if log:
        if not has_scale:
            raise NotSearchable("a log-scaled rate needs a positive default to centre its range on")
        factor = 10 ** LOG_DECADES
        low, high = default / factor, default * factor
        low = max(low, minimum) if minimum is not None else low
        high = min(high, maximum) if maximum is not None else high
        notes.append(f"log scale, one decade either side of the default {default:g}")
        return low, high
    if maximum is None or minimum is None:
        if not has_scale:
            missing = "maximum" if maximum is None else "minimum"
            raise NotSearchable(f"no finite {missing} in the schema and no positive default to derive one; "
                                f"set a range in automl.range_override")
    if maximum is None:
        high = default * BAND
        low = default / BAND if minimum is None else max(minimum, default / BAND)
        if leaf.kind == "int":
            high, low = math.floor(high), math.ceil(low)
        shown = "Infinity" if leaf.maximum is not None else "missing"
        notes.append(f"maximum {shown}: searched in [{low:g}, {high:g}] around the default {default:g}")
        return low, high
    if minimum is None:
        low = min(default / BAND, maximum)
        notes.append(f"minimum missing: searched from {low:g} (half the default)")
        return low, maximum
    return minimum, maximum


def _powers(base: int, low: float, high: float) -> List[int]:
    powers, value = [], 1
    while value <= high:
        if value >= low:
            powers.append(value)
        value *= base
    return powers


def _nudge_up(low: float, high: float) -> float:
    """The smallest useful value above an exclusive minimum (a millionth of the range)."""
    return low + max((high - low) * 1e-6, abs(low) * 1e-9, 1e-12)


def _nudge_down(high: float, low: float) -> float:
    return high - max((high - low) * 1e-6, abs(high) * 1e-9, 1e-12)
