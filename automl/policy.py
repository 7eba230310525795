"""``--automl-policy``: should ``train`` run a sweep or one plain training run?

The rule of NVIDIA's model skills (research report 4.4), as a pure function:

- ``off``: plain training, always;
- ``on`` (and ``auto``, its spelling before skill-bank 7.0.1): a sweep when
  the skill is AutoML-enabled (``automl_enabled: true``) and both its train
  schema and its train spec template are packaged and readable; otherwise plain
  training, with a notice when AutoML is enabled but not runnable.

The policy is a workflow argument and never a spec key; ``automl.spec``
refuses a spec that contains it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Union

import yaml

from trainers.errors import UserError

from .skills import Skill, find_skill

POLICIES = ("on", "auto", "off")
DEFAULT_POLICY = "on"


@dataclass(frozen=True)
class Route:
    """Where ``train`` goes: ``kind`` is ``"sweep"`` or ``"train"``; ``notice`` is for the user."""

    kind: str
    notice: Optional[str] = None


def decide_route(skill: Union[Skill, str], policy: str = DEFAULT_POLICY) -> Route:
    """The route for the train action of ``skill`` under ``policy``."""
    if policy not in POLICIES:
        raise UserError(f"--automl-policy {policy}: expected one of {', '.join(POLICIES)}")
    if isinstance(skill, str):
        skill = find_skill(skill)
    if policy == "off":
        return Route("train")
    if not skill.automl_enabled:
        return Route("train")
    missing = _not_runnable_because(skill)
    if missing:
        return Route("train", notice=f"AutoML is enabled for skill {skill.name} but not runnable ({missing}); "
                                     f"running plain training")
    return Route("sweep")


def _not_runnable_because(skill: Skill) -> Optional[str]:
    schema_path, template_path = skill.schema_path("train"), skill.template_path("train")
    if not schema_path.is_file():
        return f"{schema_path.relative_to(skill.root)} is not packaged"
    try:
        schema = json.loads(schema_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return f"{schema_path.relative_to(skill.root)} cannot be read: {error}"
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return f"{schema_path.relative_to(skill.root)} has no properties"
    if not template_path.is_file():
        return f"{template_path.relative_to(skill.root)} is not packaged"
    try:
        template = yaml.safe_load(template_path.read_text())
    except (OSError, yaml.YAMLError) as error:
        return f"{template_path.relative_to(skill.root)} cannot be read: {error}"
    if not isinstance(template, dict):
        return f"{template_path.relative_to(skill.root)} is not a mapping"
    return None
