"""TAO's ``math_cond`` strings, parsed.

Forms found in NVIDIA's schemas (research report 1.4, 3.2), with and without
spaces: ``> 0.0``, ``>0``, ``>= 1``, ``!= 0``, ``> 0.0 <= 1.0`` (comparisons
with constants), ``^ 2`` (a power of 2), ``/ 8`` (a multiple of 8; with
``depends_on``: the parent's value divided by 8), and ``> depends_on``
(compared with the ``depends_on`` parameter's value).

Unlike TAO, which only splits on one space and ignores ``>0``, every
comparison here constrains sampling and validation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple, Union

_TERM = re.compile(r"\s*(\^|/|>=|<=|!=|==|>|<)\s*(depends_on|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")

Operand = Union[float, str]  # a number, or "depends_on"


@dataclass(frozen=True)
class MathCond:
    """A parsed ``math_cond``: comparisons, an optional power base and multiple."""

    text: str
    comparisons: Tuple[Tuple[str, Operand], ...] = ()
    power_of: Optional[int] = None
    multiple_of: Optional[int] = None

    @property
    def relations(self) -> Tuple[Tuple[str, str], ...]:
        """Comparisons against the ``depends_on`` parameter, e.g. ``((">", "depends_on"),)``."""
        return tuple((op, v) for op, v in self.comparisons if v == "depends_on")

    @property
    def constants(self) -> Tuple[Tuple[str, float], ...]:
        return tuple((op, v) for op, v in self.comparisons if v != "depends_on")


class MathCondError(ValueError):
    """A math_cond this reader does not understand."""


def parse_math_cond(text: Optional[str]) -> Optional[MathCond]:
    """Parse ``text``; None for no condition; MathCondError if it is not understood."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    position, comparisons, power, multiple = 0, [], None, None
    while position < len(text):
        match = _TERM.match(text, position)
        if not match:
            raise MathCondError(f"math_cond {text!r} is not understood at {text[position:]!r}")
        op, operand = match.group(1), match.group(2)
        position = match.end()
        if op in ("^", "/"):
            if operand == "depends_on" or float(operand) != int(float(operand)) or int(float(operand)) < 2:
                raise MathCondError(f"math_cond {text!r}: {op} needs an integer of at least 2")
            if op == "^":
                power = int(float(operand))
            else:
                multiple = int(float(operand))
            continue
        comparisons.append((op, operand if operand == "depends_on" else float(operand)))
    return MathCond(text=text, comparisons=tuple(comparisons), power_of=power, multiple_of=multiple)


def compare(op: str, left: float, right: float) -> bool:
    """``left op right`` for the comparison operators of math_cond."""
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right,
            "!=": left != right, "==": left == right}[op]
