"""Skill folders: where a skill's schemas, spec templates and skill_info live.

A skill is named (``rtdetr`` -> the ``skill/`` folder packaged inside
``trainers/rtdetr``) or given as a path to a folder in NVIDIA's layout
(``schemas/<action>.schema.json``, ``schemas/manifest.json``,
``references/skill_info.yaml``, ``references/spec_template_<action>.yaml``).
"""
from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from search_spaces.json_schema import merge_action_schemas
from search_spaces.names import did_you_mean
from search_spaces.schema_reader import load_schema_file
from search_spaces.validation import SpecValidator
from trainers.errors import UserError

# Skill name -> the Python package that holds its trainer, its config and its skill/ folder.
TRAINERS = {"rtdetr": "trainers.rtdetr"}


@dataclass(frozen=True)
class Skill:
    """One skill folder."""

    name: str
    root: Path
    trainer_package: Optional[str] = None

    @property
    def manifest(self) -> Dict[str, Any]:
        path = self.root / "schemas" / "manifest.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise UserError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None

    @property
    def info(self) -> Dict[str, Any]:
        """``references/skill_info.yaml`` ({} when missing)."""
        path = self.root / "references" / "skill_info.yaml"
        if not path.is_file():
            return {}
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise UserError(f"{path}: not valid YAML ({error})") from None
        return data if isinstance(data, dict) else {}

    @property
    def automl_enabled(self) -> bool:
        return self.info.get("automl_enabled") is True or self.manifest.get("automl_enabled") is True

    def actions(self) -> List[str]:
        manifest_actions = self.manifest.get("actions") or {}
        found = {p.name[: -len(".schema.json")] for p in (self.root / "schemas").glob("*.schema.json")}
        return sorted(set(manifest_actions) | found)

    def schema_path(self, action: str) -> Path:
        entry = (self.manifest.get("actions") or {}).get(action) or {}
        return self.root / entry.get("path", f"schemas/{action}.schema.json")

    def template_path(self, action: str) -> Path:
        entry = (self.manifest.get("actions") or {}).get(action) or {}
        return self.root / entry.get("spec_template", f"references/spec_template_{action}.yaml")

    def schema(self, action: str) -> Dict[str, Any]:
        path = self.schema_path(action)
        if not path.is_file():
            raise UserError(f"skill {self.name}: no {action} schema ({path} is missing)")
        return load_schema_file(path)

    def validation_schema(self) -> Dict[str, Any]:
        """One TAO schema covering every section of every action (a spec file may carry them all)."""
        return _merged_schema(self.root, tuple(self.actions()))

    def validator(self) -> SpecValidator:
        """The spec validator for :meth:`validation_schema` (built once per skill folder)."""
        return _validator(self.root, tuple(self.actions()))


@functools.lru_cache(maxsize=8)
def _validator(root: Path, actions: tuple) -> SpecValidator:
    return SpecValidator(_merged_schema(root, actions))


@functools.lru_cache(maxsize=8)
def _merged_schema(root: Path, actions: tuple) -> Dict[str, Any]:
    schemas = []
    for action in actions:
        path = root / "schemas" / f"{action}.schema.json"
        if path.is_file():
            schemas.append(load_schema_file(path))
    if not schemas:
        raise UserError(f"{root}: no schemas/<action>.schema.json in this skill folder")
    return merge_action_schemas(schemas)


def find_skill(name: str) -> Skill:
    """The skill called ``name`` (``rtdetr``), or the skill folder at path ``name``."""
    if name in TRAINERS:
        package = TRAINERS[name]
        # find_spec locates the package without running its __init__ (which may import torch).
        spec = importlib.util.find_spec(package)
        root = Path(list(spec.submodule_search_locations)[0]) / "skill"
        return Skill(name=name, root=root, trainer_package=package)
    path = Path(name)
    if (path / "schemas").is_dir() or (path / "references" / "skill_info.yaml").is_file():
        return Skill(name=path.name, root=path)
    hint = did_you_mean(name, list(TRAINERS))
    suffix = f" (did you mean '{hint}'?)" if hint else f" (known skills: {', '.join(TRAINERS)})"
    raise UserError(f"--skill {name}: unknown skill{suffix}")
