"""TAO schema vocabulary -> standard JSON Schema (Draft 2020-12), for validating specs.

Mapping: ``int``->integer, ``float``->number, ``bool``->boolean,
``string``->string, ``categorical``/``ordered_int``->``enum``,
``collection`` with properties->object with ``additionalProperties: false``
(unknown keys are errors), ``collection`` without properties->any object,
``list``-like types->array (``items`` given, or inferred from the default),
``anyOf`` branches translated one by one; ``maximum: Infinity`` is dropped;
``math_cond`` comparisons with constants become ``exclusiveMinimum`` /
``minimum`` / ``maximum`` / ``not const``, ``/ k`` becomes ``multipleOf``,
``^ k`` an enum of powers when the range is finite.  A leaf with no default
(NVIDIA's ``evaluate.input_width``) also accepts null.  Relations between keys
(``> depends_on``, ``x_maximum_expr``) cannot be said in JSON Schema; see
:mod:`search_spaces.validation`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

from .math_cond import MathCondError, parse_math_cond

_SCALARS = {"int": "integer", "integer": "integer", "float": "number", "number": "number",
            "bool": "boolean", "boolean": "boolean", "string": "string", "str": "string"}
_CONTAINERS = {"collection", "object", "dict"}
_LISTS = {"list", "array", "subset_list", "optional_list", "list_1_backbone", "list_1_normal", "list_2", "list_3"}


def to_json_schema(tao_schema: Dict[str, Any]) -> Dict[str, Any]:
    """A Draft 2020-12 schema for specs described by ``tao_schema`` (any TAO action schema)."""
    root = _node({"type": "collection", "properties": tao_schema.get("properties", {}),
                  "required": tao_schema.get("required", [])})
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return root


def merge_action_schemas(schemas: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One TAO schema whose sections are the union of several action schemas' sections.

    NVIDIA's action schemas each keep only some sections (evaluate.schema.json
    has no ``export``); a spec file may carry all of them.
    """
    properties: Dict[str, Any] = {}
    required: List[str] = []
    for schema in schemas:
        for name, node in schema.get("properties", {}).items():
            if isinstance(node, dict) and (name not in properties or _richer(node, properties[name])):
                properties[name] = node
        required += [r for r in schema.get("required", []) if r not in required]
    return {"type": "object", "properties": properties, "required": required}


def _richer(candidate: Dict[str, Any], current: Dict[str, Any]) -> bool:
    """NVIDIA's train schema has an empty ``distill``; prefer a copy with properties."""
    return len(candidate.get("properties", {}) or {}) > len(current.get("properties", {}) or {})


def _node(node: Dict[str, Any]) -> Dict[str, Any]:
    if "anyOf" in node or "oneOf" in node:
        key = "anyOf" if "anyOf" in node else "oneOf"
        out = {"anyOf": [_node(b) for b in node[key] if isinstance(b, dict)]}
        _add_numeric(out, node)
        return _nullable(out, node)
    raw = node.get("type")
    if raw in _CONTAINERS or (raw is None and isinstance(node.get("properties"), dict)):
        return _object(node)
    if raw in _LISTS:
        return _nullable(_array(node), node)
    out: Dict[str, Any] = {}
    if isinstance(node.get("enum"), list) and node["enum"]:
        out["enum"] = list(node["enum"])
    elif raw in _SCALARS:
        out["type"] = _SCALARS[raw]
    elif isinstance(raw, list):
        out["type"] = [_SCALARS.get(t, t) for t in raw]
    if out.get("type") in ("integer", "number") or (out.get("enum") and _all_numbers(out["enum"])):
        _add_numeric(out, node)
    if node.get("pattern") and out.get("type") == "string":
        out["pattern"] = node["pattern"]
    return _nullable(out, node)


def _object(node: Dict[str, Any]) -> Dict[str, Any]:
    properties = node.get("properties")
    if not isinstance(properties, dict) or not properties:
        return {"type": "object"}
    out = {"type": "object",
           "properties": {k: _node(v) for k, v in properties.items() if isinstance(v, dict)},
           "additionalProperties": False}
    return out


def _array(node: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": "array"}
    items = node.get("items")
    if isinstance(items, dict):
        out["items"] = _node(items)
    else:
        inferred = _items_from_default(node.get("default"))
        if inferred:
            out["items"] = inferred
    if isinstance(node.get("enum"), list) and node["enum"]:  # subset_list: items from the options
        out["items"] = {"enum": list(node["enum"])}
    return out


def _items_from_default(default: Any) -> Optional[Dict[str, Any]]:
    """NVIDIA's lists carry no ``items``; their default's first element tells the item type."""
    if not isinstance(default, list) or not default:
        return None
    first = default[0]
    if isinstance(first, bool):
        return {"type": "boolean"}
    if isinstance(first, int):
        return {"type": "number"} if any(isinstance(v, float) for v in default) else {"type": "integer"}
    if isinstance(first, float):
        return {"type": "number"}
    if isinstance(first, str):
        return {"type": "string"}
    if isinstance(first, dict):
        return {"type": "object",
                "properties": {k: (_items_from_default([v]) or {}) for k, v in first.items()},
                "additionalProperties": False}
    return None


def _add_numeric(out: Dict[str, Any], node: Dict[str, Any]) -> None:
    minimum, maximum = _finite(node.get("minimum")), _finite(node.get("maximum"))
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    try:
        cond = parse_math_cond(node.get("math_cond"))
    except MathCondError:
        return
    if cond is None:
        return
    for op, value in cond.constants:
        if op == ">":
            out["exclusiveMinimum"] = max(value, out.get("exclusiveMinimum", -math.inf))
        elif op == ">=":
            out["minimum"] = max(value, out.get("minimum", -math.inf))
        elif op == "<":
            out["exclusiveMaximum"] = min(value, out.get("exclusiveMaximum", math.inf))
        elif op == "<=":
            out["maximum"] = min(value, out.get("maximum", math.inf))
        elif op == "!=":
            out.setdefault("not", {"enum": []})["enum"].append(value)
    if cond.multiple_of and not node.get("depends_on"):
        out["multipleOf"] = cond.multiple_of
    if cond.power_of and maximum is not None:
        powers, value = [], 1
        while value <= maximum:
            if minimum is None or value >= minimum:
                powers.append(value)
            value *= cond.power_of
        out["enum"] = powers


def _nullable(out: Dict[str, Any], node: Dict[str, Any]) -> Dict[str, Any]:
    """Leaves without a default (or a null one) may stay null in a merged spec."""
    if "default" in node and node["default"] is not None:
        return out
    return {"anyOf": [out, {"type": "null"}]}


def _finite(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isinf(value):
        return None
    return value


def _all_numbers(values: List[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
