"""YAML reading and ``key=value`` command-line overrides.

- YAML is read with a SafeLoader whose float rule also accepts ``1e-4`` (PyYAML
  follows YAML 1.1, where that is a string) and rejects duplicate keys; a
  syntax error becomes one line naming the file, line and column.
- An override ``train.optim.lr=3e-4`` sets one key; the value is a YAML scalar
  or flow collection (``true``, ``8``, ``[1, 2]``, ``{a: 1}``), read with the
  same loader; list items are addressed by index
  (``dataset.train_data_sources.0.image_dir=/data/a``), and an index equal to
  the list's length appends.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import yaml

from trainers.errors import UserError

_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)


class SpecLoader(yaml.SafeLoader):
    """SafeLoader + YAML 1.2 floats (``1e-4``) + an error on duplicate keys."""


SpecLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in list("-+0123456789."):
    SpecLoader.yaml_implicit_resolvers[_first] = [
        (tag, regexp) for tag, regexp in SpecLoader.yaml_implicit_resolvers.get(_first, [])
        if tag != "tag:yaml.org,2002:float"]
    SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, [_first])


def _mapping_without_duplicates(loader: SpecLoader, node: yaml.MappingNode) -> Dict[Any, Any]:
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML; a syntax error raises UserError ``source:line:column: problem``."""
    try:
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - SpecLoader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        detail = f"{context}, {problem}" if context and "duplicate" not in problem else problem
        raise UserError(f"{where}: YAML syntax error: {detail}") from None


def load_yaml_file(path: Union[str, Path]) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such spec file") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read the spec ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not a text (UTF-8) spec file (byte {error.start}: {error.reason})") from None
    return load_yaml_text(text, str(path))


def parse_override(text: str) -> Tuple[List[Union[str, int]], Any]:
    """``"a.b.0.c=1e-4"`` -> ``(["a", "b", 0, "c"], 0.0001)``."""
    if "=" not in text:
        raise UserError(f"override {text!r}: expected key=value (e.g. train.num_epochs=20)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(part == "" for part in key.split(".")):
        raise UserError(f"override {text!r}: the key must be a dotted path like train.optim.lr")
    value = load_yaml_text(raw, f"override {key}") if raw.strip() else ""
    parts: List[Union[str, int]] = [int(p) if p.isdigit() else p for p in key.split(".")]
    return parts, value


def apply_overrides(spec: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """A copy of ``spec`` with every ``key=value`` applied in order."""
    result = copy.deepcopy(spec)
    for text in overrides:
        parts, value = parse_override(text)
        _set(result, parts, value, text)
    return result


def apply_values(spec: Dict[str, Any], values: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of ``spec`` with already-typed values set by dotted name (a trial's sampled values)."""
    result = copy.deepcopy(spec)
    for name, value in values.items():
        parts: List[Union[str, int]] = [int(p) if p.isdigit() else p for p in name.split(".")]
        _set(result, parts, copy.deepcopy(value), f"{name}={value!r}")
    return result


def _set(node: Any, parts: List[Union[str, int]], value: Any, text: str) -> None:
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(str(p) for p in parts[:depth]) or "the spec"
        if isinstance(node, list):
            if not isinstance(part, int):
                raise UserError(f"override {text!r}: {here} is a list; use an index, e.g. {here}.0")
            if part > len(node):
                raise UserError(f"override {text!r}: {here} has {len(node)} item(s); index {part} is out of range")
            if part == len(node):
                node.append({} if not last else None)
        elif isinstance(node, dict):
            part = str(part) if isinstance(part, int) else part
            if not last and node.get(part) is None:
                node[part] = {}  # a new section (keys the defaults lack are reported by validation)
        else:
            raise UserError(f"override {text!r}: {here} is a value, not a section")
        if last:
            node[part] = value
        else:
            node = node[part]
