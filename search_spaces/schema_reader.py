"""Read a TAO ``<action>.schema.json`` (NVIDIA's or ours) into flat, typed leaves.

The format (research report 1.1-1.5) mixes two vocabularies and a few quirks,
all handled here so nothing downstream has to know:

- TAO type names (``int``, ``float``, ``bool``, ``string``, ``categorical``,
  ``ordered_int``, ``ordered``, ``collection``, ``list``, ``list_2``,
  ``subset_list``, ``optional_list`` ...) and JSON Schema names (``integer``,
  ``number``, ``boolean``, ``object``, ``array``, ``anyOf``);
- ``maximum: Infinity`` (a non-standard JSON literal) and missing maxima;
- non-dict entries under ``properties`` (NVIDIA's root lists a bare
  ``automl_disabled_parameters`` there) are skipped;
- ``automl_default_parameters`` / ``automl_disabled_parameters`` at the root
  and on every collection;
- ``parent_param: "TRUE"`` (a string) and ``popular`` as bool, list or dict.

Only nodes typed ``collection``/``object``/``dict`` *with* ``properties`` are
recursed into; everything else is a leaf, as in TAO's ``flatten_properties``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from trainers.errors import UserError

MISSING = object()

_CONTAINER_TYPES = {"collection", "object", "dict"}
_LIST_TYPES = {"list", "array", "subset_list", "optional_list", "list_1_backbone", "list_1_normal", "list_2", "list_3"}
_TYPE_ALIASES = {
    "int": "int", "integer": "int",
    "float": "float", "number": "float",
    "bool": "bool", "boolean": "bool",
    "string": "string", "str": "string",
    "categorical": "categorical", "ordered": "categorical",
    "ordered_int": "ordered_int",
}


@dataclass(frozen=True)
class SchemaLeaf:
    """One leaf of a schema, its type normalised to: int, float, bool, string,
    categorical, ordered_int, list, collection or unknown."""

    name: str
    kind: str
    raw_type: str
    default: Any = MISSING
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    enum: Optional[Tuple[Any, ...]] = None
    option_weights: Optional[Tuple[float, ...]] = None
    math_cond: Optional[str] = None
    depends_on: Optional[str] = None
    parent_param: bool = False
    automl_enabled: Optional[bool] = None
    popular: bool = False
    pattern: Optional[str] = None
    description: str = ""
    # Our x_* extensions (absent from NVIDIA's schemas).
    active_when: Dict[str, Tuple[Any, ...]] = field(default_factory=dict)
    maximum_expr: Optional[str] = None
    no_effect: Optional[str] = None
    supported_options: Optional[Tuple[Any, ...]] = None

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")


@dataclass(frozen=True)
class ReadSchema:
    """A schema flattened: its leaves by dotted name, and its AutoML lists."""

    leaves: Dict[str, SchemaLeaf]
    default_parameters: Tuple[str, ...]
    disabled_parameters: Tuple[str, ...]
    containers: Tuple[str, ...]
    source: str = "<schema>"


def load_schema_file(path: Union[str, Path]) -> Dict[str, Any]:
    """Parse a schema file; Python's json accepts the ``Infinity`` literal."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise UserError(f"{path}: cannot read the schema ({error.strerror})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(document, dict) or not isinstance(document.get("properties"), dict):
        raise UserError(f"{path}: not a TAO schema (no top-level 'properties' object)")
    return document


def read_schema(document: Dict[str, Any], source: str = "<schema>") -> ReadSchema:
    """Flatten a parsed schema document."""
    leaves: Dict[str, SchemaLeaf] = {}
    containers: List[str] = []
    try:
        enabled: List[str] = list(_names(document.get("automl_default_parameters"), "automl_default_parameters"))
        disabled: List[str] = list(_names(document.get("automl_disabled_parameters"), "automl_disabled_parameters"))
        _walk(document.get("properties", {}), "", leaves, containers, enabled, disabled)
    except UserError as error:
        raise UserError(f"{source}: {error}") from None
    unknown = [name for name in enabled if name not in leaves and name not in containers]
    if unknown:
        raise UserError(f"{source}: automl_default_parameters names {unknown[0]!r}, which is not a key of the "
                        f"schema; fix the name or remove it")
    return ReadSchema(leaves=leaves, default_parameters=tuple(dict.fromkeys(enabled)),
                      disabled_parameters=tuple(dict.fromkeys(disabled)), containers=tuple(containers),
                      source=source)


def _walk(properties: Dict[str, Any], prefix: str, leaves: Dict[str, SchemaLeaf], containers: List[str],
          enabled: List[str], disabled: List[str]) -> None:
    for key, node in properties.items():
        if not isinstance(node, dict):
            continue  # NVIDIA's root carries a bare list here
        name = f"{prefix}{key}"
        if _is_container(node):
            containers.append(name)
            enabled.extend(_names(node.get("automl_default_parameters"), f"{name}.automl_default_parameters"))
            disabled.extend(_names(node.get("automl_disabled_parameters"), f"{name}.automl_disabled_parameters"))
            if node.get("automl_enabled") is False:
                disabled.append(name)
            _walk(node["properties"], name + ".", leaves, containers, enabled, disabled)
        else:
            leaves[name] = _leaf(name, node)


def _is_container(node: Dict[str, Any]) -> bool:
    return node.get("type") in _CONTAINER_TYPES and isinstance(node.get("properties"), dict)


def _leaf(name: str, node: Dict[str, Any]) -> SchemaLeaf:
    raw_type = _raw_type(node)
    bounds = {}
    for side in ("minimum", "maximum"):
        bounds[side] = _number(node.get(side))
        if bounds[side] is None and isinstance(node.get(side), str) and node[side].strip():   # lists: per item
            raise UserError(f"{name}.{side}: {node[side]!r} is not a number")
    if bounds["minimum"] is not None and bounds["maximum"] is not None and bounds["minimum"] > bounds["maximum"]:
        raise UserError(f"{name}: minimum {node['minimum']!r} is above maximum {node['maximum']!r}")
    enum = node.get("enum")
    weights = node.get("option_weights")
    return SchemaLeaf(
        name=name,
        kind=_kind(raw_type, node),
        raw_type=raw_type,
        default=node.get("default", MISSING),
        minimum=_number(node.get("minimum")),
        maximum=_number(node.get("maximum")),
        enum=tuple(enum) if isinstance(enum, list) else None,
        option_weights=tuple(float(w) for w in weights) if isinstance(weights, list) else None,
        math_cond=str(node["math_cond"]).strip() if node.get("math_cond") not in (None, "") else None,
        depends_on=str(node["depends_on"]) if node.get("depends_on") else None,
        parent_param=str(node.get("parent_param", "")).upper() == "TRUE" or node.get("parent_param") is True,
        automl_enabled=_flag(node.get("automl_enabled")),
        popular=node.get("popular") is True or str(node.get("popular", "")).lower() == "yes",
        pattern=node.get("pattern"),
        description=str(node.get("description", "")),
        active_when={k: tuple(v) for k, v in (node.get("x_active_when") or {}).items()},
        maximum_expr=node.get("x_maximum_expr"),
        no_effect=node.get("x_no_effect"),
        supported_options=tuple(node["x_supported_options"]) if node.get("x_supported_options") else None,
    )


def _raw_type(node: Dict[str, Any]) -> str:
    if isinstance(node.get("type"), str):
        return node["type"]
    if isinstance(node.get("type"), list):  # JSON Schema allows ["integer", "null"]
        names = [t for t in node["type"] if t != "null"]
        return names[0] if names else "unknown"
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list):
        names = [b.get("type") for b in branches if isinstance(b, dict)]
        if "integer" in names and isinstance(node.get("default"), int) and not isinstance(node.get("default"), bool):
            return "integer"
        for preferred in ("number", "float", "integer", "int", "string", "boolean"):
            if preferred in names:
                return preferred
        return names[0] if names and isinstance(names[0], str) else "unknown"
    default = node.get("default")
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if "minimum" in node or "maximum" in node:
        return "int" if all(isinstance(node.get(k, 0), int) for k in ("minimum", "maximum")) else "float"
    return "unknown"


def _kind(raw_type: str, node: Dict[str, Any]) -> str:
    if raw_type in _LIST_TYPES:
        return "list"
    if raw_type in _CONTAINER_TYPES:
        return "collection"
    kind = _TYPE_ALIASES.get(raw_type, "unknown")
    enum = node.get("enum")
    if isinstance(enum, list) and enum and kind not in ("bool",):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in enum):
            return "ordered_int"
        return "categorical"
    if kind == "categorical":  # a categorical without options cannot be sampled
        return "string"
    return kind


def _number(value: Any) -> Optional[float]:
    """A bound as a number; ``Infinity``/``"inf"`` become ``math.inf``, blanks None."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if not math.isnan(number) else None


def _flag(value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE"
    return None


def _names(value: Any, where: str = "") -> List[str]:
    """A list of dotted names; absent is empty, anything else than a list of strings is refused."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where}: expected a list of dotted key names, got {value!r}"[:300])
    return list(value)
