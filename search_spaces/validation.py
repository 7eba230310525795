"""Validate a spec dict against a skill's TAO schemas: one readable line per problem.

JSON Schema (via :mod:`search_spaces.json_schema` and jsonschema's
Draft202012Validator) catches types, ranges, enums, multiples and unknown keys;
the relations JSON Schema cannot express (``math_cond: "> depends_on"``, our
``x_maximum_expr``) are checked here from the flattened spec.  Each line names
the dotted key and says why.
"""
from __future__ import annotations

import difflib
from typing import Any, Dict, List, Mapping, Set

import jsonschema

from trainers.errors import describe_value

from .expressions import ExpressionError, parse_expression
from .json_schema import to_json_schema
from .math_cond import MathCondError, compare, parse_math_cond
from .names import dotted, unknown_key_message
from .schema_reader import read_schema
from .space import flatten_values

MAX_OPTIONS_SHOWN = 8
_JSON_TYPES = {"integer": "an integer", "number": "a number", "boolean": "true or false", "string": "a string",
               "object": "a mapping of keys", "array": "a list", "null": "null"}


class SpecValidator:
    """Validates spec dicts against one (merged) TAO schema."""

    def __init__(self, tao_schema: Dict[str, Any]):
        self.tao_schema = tao_schema
        self.json_schema = to_json_schema(tao_schema)
        # check_schema (a test does it for every schema we translate) costs most of a second per call.
        self.validator = jsonschema.Draft202012Validator(self.json_schema)
        self.read = read_schema(tao_schema)
        self.all_paths = list(self.read.leaves) + list(self.read.containers)

    def problems(self, spec: Mapping[str, Any]) -> List[str]:
        """Every problem, one line each, in the order of the spec's keys."""
        lines: List[str] = []
        for error in sorted(self.validator.iter_errors(spec), key=lambda e: [str(p) for p in e.absolute_path]):
            lines += self._describe(error)
        # A relation read from a key that is already wrong only repeats that problem.
        wrong = {line.split(":", 1)[0] for line in lines}
        lines += relation_problems(self.read, flatten_values(spec), skip=wrong)
        return first_per_key(lines)

    def _describe(self, error: jsonschema.ValidationError) -> List[str]:
        path = dotted(error.absolute_path)
        where = path or "spec"
        kind, instance, expected = error.validator, error.instance, error.validator_value
        if kind == "additionalProperties":
            allowed = list(error.schema.get("properties", {}))
            return [unknown_key_message(path, str(key), allowed, self.all_paths)
                    for key in instance if key not in allowed]
        if kind == "anyOf":
            return self._describe_any_of(error)
        if kind == "type":
            names = expected if isinstance(expected, list) else [expected]
            wanted = " or ".join(_JSON_TYPES.get(n, n) for n in names)
            return [f"{where}: expected {wanted}, got {describe_value(instance)}"]
        if kind == "enum":
            shown = [_show(v) for v in expected]
            options = ", ".join(shown[:MAX_OPTIONS_SHOWN]) + (", ..." if len(shown) > MAX_OPTIONS_SHOWN else "")
            hint = ""
            if isinstance(instance, str):
                close = difflib.get_close_matches(instance, [str(v) for v in expected], n=1, cutoff=0.5)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
            return [f"{where}: {_show(instance)} is not one of: {options}{hint}"]
        if kind == "minimum":
            return [f"{where}: {_show(instance)} is below the minimum {_show(expected)}"]
        if kind == "maximum":
            return [f"{where}: {_show(instance)} is above the maximum {_show(expected)}"]
        if kind == "exclusiveMinimum":
            return [f"{where}: {_show(instance)} must be greater than {_show(expected)}"]
        if kind == "exclusiveMaximum":
            return [f"{where}: {_show(instance)} must be less than {_show(expected)}"]
        if kind == "multipleOf":
            return [f"{where}: {_show(instance)} must be a multiple of {_show(expected)}"]
        if kind == "not":
            return [f"{where}: {_show(instance)} is not allowed here"]
        if kind == "pattern":
            return [f"{where}: {_show(instance)} does not match the pattern {expected}"]
        if kind == "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            return [f"{dotted([*error.absolute_path, missing])}: required key is missing"]
        return [f"{where}: {error.message}"]

    def _describe_any_of(self, error: jsonschema.ValidationError) -> List[str]:
        """A nullable wrapper or TAO's union: report the first non-null branch's errors."""
        branches = error.schema.get("anyOf", [])
        for index, branch in enumerate(branches):
            if branch == {"type": "null"}:
                continue
            sub = [e for e in error.context if e.schema_path and e.schema_path[0] == index]
            if sub:
                lines: List[str] = []
                for e in sub:
                    lines += self._describe(e)
                return lines
        return [f"{dotted(error.absolute_path) or 'spec'}: {describe_value(error.instance)} matches none of "
                f"the allowed forms"]


def relation_problems(schema, values: Mapping[str, Any], skip: Set[str] = frozenset()) -> List[str]:
    """``> depends_on``-style conditions and ``x_maximum_expr`` bounds, checked on flat spec values.

    Relations that read a key in ``skip`` (already reported as wrong) are not checked.
    """
    lines: List[str] = []
    for name, leaf in schema.leaves.items():
        if name not in values or not _is_number(values[name]) or name in skip:
            continue
        if leaf.depends_on in skip:
            continue
        value = values[name]
        if leaf.depends_on and leaf.math_cond:
            try:
                cond = parse_math_cond(leaf.math_cond)
            except MathCondError:
                cond = None
            parent = values.get(leaf.depends_on)
            for op, _ in (cond.relations if cond else ()):
                if _is_number(parent) and not compare(op, value, parent):
                    lines.append(f"{name}: {_show(value)} must be {op} {leaf.depends_on} ({_show(parent)})")
        if leaf.maximum_expr:
            try:
                expression = parse_expression(leaf.maximum_expr)
                if skip & set(expression.names):
                    continue
                limit = expression.evaluate(values)
            except (ExpressionError, KeyError, TypeError, ZeroDivisionError):
                continue
            if value > limit:
                lines.append(f"{name}: {_show(value)} is above {_show(limit)} = {leaf.maximum_expr}")
    return lines


def first_per_key(lines: List[str]) -> List[str]:
    """One line per dotted key (-1 breaks both ``minimum`` and ``> 0.0``: say it once)."""
    seen, kept = set(), []
    for line in lines:
        key = line.split(":", 1)[0]
        if key not in seen or "unknown key" in line:
            seen.add(key)
            kept.append(line)
    return list(dict.fromkeys(kept))


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_spec(spec: Mapping[str, Any], tao_schema: Dict[str, Any]) -> List[str]:
    """Problems of ``spec`` against ``tao_schema`` (a convenience over SpecValidator)."""
    return SpecValidator(tao_schema).problems(spec)

