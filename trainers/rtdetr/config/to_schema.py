"""Config dataclasses -> a TAO ``<action>.schema.json`` dict, in NVIDIA's format.

Mirrors TAO Core's ``create_json_schema`` (research report 1.1): TAO type names
(``int``, ``float``, ``bool``, ``string``, ``categorical``, ``ordered_int``,
``list``, ``collection``), ``minimum``/``maximum`` (``inf`` becomes the JSON
literal ``Infinity``), ``enum``, ``option_weights``, ``math_cond``,
``depends_on``, ``parent_param: "TRUE"``, ``automl_enabled``, ``popular``,
``required``, nested ``default`` objects, per-collection and root
``automl_default_parameters`` / ``automl_disabled_parameters``, and the action
filter (an action schema keeps ``train``, ``distill``, ``quantize``, its own
section and every non-action key).

Our additions are ``x_*`` keys (ignored by NVIDIA's readers): ``x_active_when``,
``x_maximum_expr``, ``x_no_effect``, ``x_supported_options``, and ``items`` for
lists (standard JSON Schema).
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Dict, List, Optional, Tuple

from .fields import schema_meta
from .support import SUPPORTED

ACTIONS = ("train", "evaluate", "inference", "export", "gen_trt_engine", "quantize", "distill")
# Sections every action schema keeps, as TAO's filter_schema does.
ALWAYS_KEPT = ("train", "distill", "quantize")


def action_schema(root_cls: type, action: str, x_tao_schema: Dict[str, Any]) -> Dict[str, Any]:
    """The ``<action>.schema.json`` document for the config class ``root_cls``."""
    builder = _Builder()
    full = builder.collection(root_cls, "", root_cls())
    keep = [name for name in full["properties"]
            if name not in ACTIONS or name in ALWAYS_KEPT or name == action]
    properties = {name: full["properties"][name] for name in keep}
    default = {name: full["default"][name] for name in keep}
    enabled, disabled, popular = [], [], {}
    required = [name for name in full.get("required", []) if name in keep]
    for name in keep:
        node = properties[name]
        _collect_automl_lists(name, node, enabled, disabled)
        node_popular = _popular_defaults(node)
        if node_popular is not None:
            popular[name] = node_popular
    schema = {
        "type": "object",
        "properties": properties,
        "default": default,
        "automl_default_parameters": enabled,
        "automl_disabled_parameters": disabled,
        "popular": popular,
        "required": required,
        "x_tao_schema": dict(x_tao_schema, action=action, schema_action=action),
    }
    return schema


class _Builder:
    """Walks the dataclasses; remembers where each class first appears so that
    references inside a re-used class (``distill.teacher`` is a ``ModelConfig``)
    point into its own copy."""

    def __init__(self) -> None:
        self.home: Dict[type, str] = {}
        self.unsearchable_depth = 0

    def collection(self, cls: type, path: str, value: Any, meta: Optional[dict] = None) -> Dict[str, Any]:
        if meta is not None and meta.get("searchable") is False:
            self.unsearchable_depth += 1
            try:
                return self._collection(cls, path, value, meta)
            finally:
                self.unsearchable_depth -= 1
        return self._collection(cls, path, value, meta)

    def _collection(self, cls: type, path: str, value: Any, meta: Optional[dict]) -> Dict[str, Any]:
        self.home.setdefault(cls, path)
        hints = typing.get_type_hints(cls)
        node: Dict[str, Any] = {"type": "collection"}
        if meta:
            _copy_text(meta, node)
            node["automl_enabled"] = bool(meta.get("automl_enabled"))
        properties, enabled, disabled, popular, required = {}, [], [], [], []
        for field in dataclasses.fields(cls):
            child_path = f"{path}.{field.name}" if path else field.name
            child_meta = schema_meta(field)
            child_value = getattr(value, field.name)
            if dataclasses.is_dataclass(hints[field.name]):
                child = self.collection(hints[field.name], child_path, child_value, child_meta)
            else:
                child = self.leaf(hints[field.name], child_path, child_value, child_meta, cls)
            properties[field.name] = child
            if child.get("automl_enabled") is True:
                enabled.append(child_path)
            elif child.get("automl_enabled") is False:
                disabled.append(child_path)
            if child.get("popular") is True:
                popular.append(field.name)
            if child_meta.get("required"):
                required.append(field.name)
        node["properties"] = properties
        node["default"] = _plain(value)
        if enabled:
            node["automl_default_parameters"] = enabled
        if disabled:
            node["automl_disabled_parameters"] = disabled
        if popular:
            node["popular"] = popular
        if required:
            node["required"] = required
        return node

    def leaf(self, tp: Any, path: str, value: Any, meta: dict, owner: type) -> Dict[str, Any]:
        node: Dict[str, Any] = {"type": meta.get("value_type") or _tao_type(tp, meta)}
        _copy_text(meta, node)
        if value is not None:
            node["default"] = _plain(value)
        for key in ("minimum", "maximum", "enum", "option_weights", "math_cond", "pattern"):
            if meta.get(key) is not None:
                node[key] = meta[key]
        if meta.get("depends_on"):
            node["depends_on"] = self._rebase(meta["depends_on"], owner, path)
        if meta.get("parent_param"):
            node["parent_param"] = "TRUE"
        if meta.get("automl_enabled") is False or (meta.get("automl_enabled") and not self.unsearchable_depth):
            node["automl_enabled"] = meta["automl_enabled"]
        if meta.get("popular"):
            node["popular"] = True
        items = _items(tp)
        if items is not None:
            node["items"] = items
        if meta.get("active_when"):
            node["x_active_when"] = {self._rebase(k, owner, path): v for k, v in meta["active_when"].items()}
        if meta.get("maximum_expr"):
            node["x_maximum_expr"] = self._rebase_expr(meta["maximum_expr"], owner, path)
        if meta.get("no_effect"):
            node["x_no_effect"] = meta["no_effect"]
        if path in SUPPORTED:
            options = node.get("enum") or ([False, True] if node["type"] == "bool" else None)
            if options is not None:
                node["x_supported_options"] = [v for v in options if v in SUPPORTED[path][0]]
        return node

    def _owner_prefixes(self, owner: type, path: str) -> Tuple[str, str]:
        section_path = path.rsplit(".", 1)[0] if "." in path else ""
        return self.home.get(owner, section_path), section_path

    def _rebase(self, ref: str, owner: type, path: str) -> str:
        home, here = self._owner_prefixes(owner, path)
        if home and home != here and ref.startswith(home + "."):
            return here + ref[len(home):]
        return ref

    def _rebase_expr(self, expr: str, owner: type, path: str) -> str:
        home, here = self._owner_prefixes(owner, path)
        if home and home != here:
            return expr.replace(home + ".", here + ".")
        return expr


def _tao_type(tp: Any, meta: dict) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    if origin in (list, List):
        return "list"
    if origin in (dict, Dict):
        return "collection"
    if tp is bool:
        return "bool"
    if tp is int:
        return "ordered_int" if meta.get("enum") else "int"
    if tp is float:
        return "float"
    if tp is str:
        return "categorical" if meta.get("enum") else "string"
    raise TypeError(f"no TAO type for {tp!r}")


def _items(tp: Any) -> Optional[Dict[str, Any]]:
    """``items`` of a list field in TAO vocabulary (``{"type": "int"}``, or a collection)."""
    if typing.get_origin(tp) not in (list, List):
        return None
    (item,) = typing.get_args(tp)
    if dataclasses.is_dataclass(item):
        return _Builder().collection(item, "", item())
    if typing.get_origin(item) in (dict, Dict):
        return {"type": "collection"}
    return {"type": _tao_type(item, {})}


def _copy_text(meta: dict, node: Dict[str, Any]) -> None:
    if meta.get("title"):
        node["title"] = meta["title"]
    if meta.get("description"):
        node["description"] = meta["description"]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _collect_automl_lists(path: str, node: Dict[str, Any], enabled: List[str], disabled: List[str]) -> None:
    """Root lists: every enabled / disabled key below ``path`` (the section itself included)."""
    flag = node.get("automl_enabled")
    if flag is True:
        enabled.append(path)
    elif flag is False:
        disabled.append(path)
    if node.get("type") == "collection":
        for name, child in node.get("properties", {}).items():
            _collect_automl_lists(f"{path}.{name}", child, enabled, disabled)


def _popular_defaults(node: Dict[str, Any]) -> Any:
    """Root ``popular``: nested dict of the defaults of popular leaves, None when there are none."""
    if node.get("type") != "collection":
        return node.get("default") if node.get("popular") is True else None
    found = {}
    for name, child in node.get("properties", {}).items():
        value = _popular_defaults(child)
        if value is not None:
            found[name] = value
    return found or None
