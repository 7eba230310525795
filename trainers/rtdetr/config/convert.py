"""Plain dicts <-> config dataclasses, strictly.

``experiment_from_dict`` is the last line of defence against a bad spec: every
unknown key (with a did-you-mean) and every value of the wrong type is
collected, and all of them are raised together as one :class:`UserError`, one
problem a line, each naming its dotted key.  Keys the spec leaves out keep the
dataclass default.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import typing
from typing import Any, Dict, List, Tuple

from search_spaces.names import dotted, unknown_key_message
from trainers.errors import UserError, describe_value

from .experiment import ExperimentConfig

# YAML 1.1 (PyYAML) reads "1e-4" as a string; a float field accepts such text.
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def experiment_from_dict(data: Dict[str, Any]) -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a (possibly partial) spec dict.

    Raises UserError listing every unknown key and wrongly typed value.
    """
    return dataclass_from_dict(ExperimentConfig, data)


def experiment_to_dict(cfg: Any) -> Dict[str, Any]:
    """The spec dict of a config (nested dicts and lists, section order kept)."""
    return dataclasses.asdict(cfg)


def dataclass_from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Strictly build any config dataclass ``cls`` from ``data``."""
    problems: List[str] = []
    value = _build(cls, data, path, problems, _all_paths(cls))
    if problems:
        raise UserError(_join(problems))
    return value


def _join(problems: List[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems in the spec:\n" + "\n".join(f"  {p}" for p in problems)


def _build(tp: Any, data: Any, path: str, problems: List[str], all_paths: Tuple[str, ...]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, data, path, problems, all_paths)
    if origin is typing.Union:
        if data is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], data, path, problems, all_paths)
    if origin in (list, List):
        if not isinstance(data, list):
            problems.append(f"{path}: expected a list, got {describe_value(data)}")
            return data
        return [_build(args[0] if args else Any, item, dotted([path, i]), problems, all_paths)
                for i, item in enumerate(data)]
    if origin in (dict, Dict):
        if not isinstance(data, dict):
            problems.append(f"{path}: expected a mapping, got {describe_value(data)}")
            return data
        value_type = args[1] if len(args) == 2 else Any
        return {key: _build(value_type, item, f"{path}.{key}", problems, all_paths) for key, item in data.items()}
    return _scalar(tp, data, path, problems)


def _build_dataclass(cls: type, data: Any, path: str, problems: List[str], all_paths: Tuple[str, ...]) -> Any:
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{path or 'spec'}: expected a mapping of keys, got {describe_value(data)}")
        return cls()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            problems.append(unknown_key_message(path, str(key), names, all_paths))
            continue
        kwargs[key] = _build(hints[key], value, f"{path}.{key}" if path else key, problems, all_paths)
    return cls(**kwargs)


def _scalar(tp: Any, data: Any, path: str, problems: List[str]) -> Any:
    if tp is Any:
        return data
    if tp is bool:
        if not isinstance(data, bool):
            problems.append(f"{path}: expected true or false, got {describe_value(data)}")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            problems.append(f"{path}: expected an integer, got {describe_value(data)}")
        return data
    if tp is float:
        if isinstance(data, bool):
            problems.append(f"{path}: expected a number, got {describe_value(data)}")
            return data
        if isinstance(data, (int, float)):
            return float(data)
        if isinstance(data, str) and _FLOAT_TEXT.match(data.strip()):
            return float(data)
        problems.append(f"{path}: expected a number, got {describe_value(data)}")
        return data
    if tp is str:
        if not isinstance(data, str):
            problems.append(f"{path}: expected a string, got {describe_value(data)}")
        return data
    return data


@functools.lru_cache(maxsize=None)
def _all_paths(cls: type, prefix: str = "") -> Tuple[str, ...]:
    """Every dotted key of a config class, for suggestions across sections."""
    paths: List[str] = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        path = f"{prefix}.{field.name}" if prefix else field.name
        paths.append(path)
        if dataclasses.is_dataclass(hints[field.name]):
            paths.extend(_all_paths(hints[field.name], path))
    return tuple(paths)
