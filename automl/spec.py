"""Load a spec the way every command does: read, merge, override, validate, build.

    cfg = load_spec("rtdetr", "spec.yaml", ["train.num_epochs=3"], action="train")

1. the YAML file is read (a syntax error names its line);
2. it is merged over the skill's defaults (sections merge key by key, lists
   and values replace);
3. ``key=value`` overrides are applied (YAML scalars, list indexes);
4. the merged spec is validated against the skill's schemas (JSON Schema
   from the TAO vocabulary, plus relations between keys), values the trainer
   does not run are refused, ``"???"`` placeholders in the action's own section
   are reported, ``automl_policy`` is refused as a spec key, and the
   ``automl`` section's parameter names are checked against the train schema;
5. every problem found is raised at once as a UserError, one line each.
"""
from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Union

from search_spaces.overrides import apply_overrides, load_yaml_file
from search_spaces.schema_reader import read_schema
from search_spaces.space import SpaceRequest, build_search_space, flatten_values
from search_spaces.validation import first_per_key
from trainers.errors import UserError

from .skills import Skill, find_skill

MISSING = "???"
POLICY_KEY = "automl_policy"


def load_spec(skill: Union[str, Skill], spec_path: Union[str, Path, None], overrides: Sequence[str] = (),
              action: str = "train") -> Any:
    """The validated ExperimentConfig of ``skill``'s trainer for ``action``.

    ``spec_path`` None starts from the skill's defaults alone.  Raises
    UserError listing every problem (one line each).
    """
    skill = skill if isinstance(skill, Skill) else find_skill(skill)
    config = _trainer_config(skill)
    spec = load_spec_dict(skill, spec_path, overrides, action)
    return config.experiment_from_dict(spec)


def load_spec_dict(skill: Union[str, Skill], spec_path: Union[str, Path, None], overrides: Sequence[str] = (),
                   action: str = "train") -> Dict[str, Any]:
    """The merged, validated spec as a plain dict (works for any skill folder, with or without a trainer)."""
    skill = skill if isinstance(skill, Skill) else find_skill(skill)
    sections = skill.validation_schema().get("properties", {})
    if action not in skill.actions() and action not in sections:  # benchmark is a section, not a TAO action
        raise UserError(f"skill {skill.name} has no action {action!r} (actions: {', '.join(skill.actions())})")
    source = str(spec_path) if spec_path is not None else f"{skill.name} defaults"
    user = _read_user_spec(spec_path)
    problems: List[str] = []
    problems += _policy_problems(user, "")
    user = _without_policy(user)
    override_list = [o for o in overrides if not o.split("=", 1)[0].strip().endswith(POLICY_KEY)]
    if len(override_list) != len(overrides):
        problems.append(f"{POLICY_KEY}: not a spec key; it is a workflow argument "
                        f"(use --automl-policy on|auto|off)")
    spec = deep_merge(_defaults(skill), user)
    spec = apply_overrides(spec, override_list)
    problems += _for_action(skill.validator().problems(spec), action)
    problems += _unsupported_problems(skill, spec)
    if not problems:
        problems += _type_problems(skill, spec)
        problems += _placeholder_problems(spec, action)
        problems += _automl_section_problems(skill, spec)
    if problems:
        raise UserError(format_problems(source, problems))
    return spec


def _for_action(problems: Sequence[str], action: str) -> List[str]:
    """Relations between the distillation teacher's keys and the dataset only matter when distilling:
    NVIDIA's teacher defaults (num_select 300 of 300 queries) break them for any single-class dataset."""
    if action == "distill":
        return list(problems)
    return [p for p in problems if not (p.startswith("distill.") and " is above " in p)]


def format_problems(source: str, problems: Sequence[str]) -> str:
    """``spec.yaml: 2 problems`` followed by one indented line per problem."""
    unique = first_per_key(problems)
    if len(unique) == 1:
        return f"{source}: {unique[0]}"
    return f"{source}: {len(unique)} problems\n" + "\n".join(f"  {p}" for p in unique)


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> Dict[str, Any]:
    """``update`` over ``base``: mappings merge key by key; anything else replaces.

    A section left empty in YAML (``model:``, i.e. None) keeps its defaults.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = deep_merge(merged[key], value)
        elif isinstance(merged.get(key), dict) and value is None:
            continue
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_user_spec(spec_path: Union[str, Path, None]) -> Dict[str, Any]:
    if spec_path is None:
        return {}
    data = load_yaml_file(spec_path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{spec_path}: a spec must be a mapping of keys, got {type(data).__name__}")
    return data


def _policy_problems(spec: Any, prefix: str) -> List[str]:
    problems = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            path = f"{prefix}{key}"
            if key == POLICY_KEY:
                problems.append(f"{path}: not a spec key; it is a workflow argument "
                                f"(use --automl-policy on|auto|off)")
            else:
                problems += _policy_problems(value, path + ".")
    return problems


def _without_policy(spec: Any) -> Any:
    if isinstance(spec, dict):
        return {k: _without_policy(v) for k, v in spec.items() if k != POLICY_KEY}
    return spec


def _trainer_config(skill: Skill) -> Any:
    if not skill.trainer_package:
        raise UserError(f"skill {skill.name} has no trainer in this package (known: rtdetr)")
    return importlib.import_module(f"{skill.trainer_package}.config")


def _defaults(skill: Skill) -> Dict[str, Any]:
    if not skill.trainer_package:
        return {}
    config = _trainer_config(skill)
    return config.experiment_to_dict(config.ExperimentConfig())


def _type_problems(skill: Skill, spec: Dict[str, Any]) -> List[str]:
    """What the trainer's dataclasses refuse that the schema let through."""
    if not skill.trainer_package:
        return []
    try:
        _trainer_config(skill).experiment_from_dict(spec)
    except UserError as error:
        return [line.strip() for line in str(error).splitlines() if not line.endswith("problems in the spec:")]
    return []


def _unsupported_problems(skill: Skill, spec: Dict[str, Any]) -> List[str]:
    """Values NVIDIA's schema allows but the trainer does not run (its config/support.py)."""
    if not skill.trainer_package:
        return []
    return importlib.import_module(f"{skill.trainer_package}.config.support").unsupported_problems(spec)


def _placeholder_problems(spec: Dict[str, Any], action: str) -> List[str]:
    """``"???"`` (Hydra's MISSING, kept from NVIDIA's templates) left in the action's own section."""
    section = spec.get(action)
    if not isinstance(section, dict):
        return []
    return [f"{action}.{key}: must be set for {action} (it is still '???')"
            for key, value in section.items() if value == MISSING]


def _automl_section_problems(skill: Skill, spec: Dict[str, Any]) -> List[str]:
    automl = spec.get("automl")
    if not isinstance(automl, dict) or not any(automl.values()):
        return []
    try:
        schema = read_schema(skill.schema("train"), source=f"the {skill.name} train schema")
        build_search_space(schema, flatten_values(spec), SpaceRequest.from_automl_section(automl))
    except UserError as error:
        return [str(error)]
    return []

