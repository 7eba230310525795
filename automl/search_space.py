"""The search space of a sweep: the skill's train schema, the spec's values and its ``automl`` edits.

    spec = load_spec_dict("rtdetr", "spec.yaml", overrides)
    space = search_space_for("rtdetr", spec)
    values = suggest_configuration(trial, space)          # or sample_configuration(space, rng)
    trial_spec = apply_values(spec, values)               # then write it and run the trainer

``schema_file`` reads another TAO train schema (NVIDIA's, say) instead of the
skill's own; the skill's knowledge of its trainer (``x_*`` hints such as
"momentum only with SGD") still applies to keys of the same name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Union

from search_spaces.parameters import SearchSpace
from search_spaces.schema_reader import load_schema_file, read_schema
from search_spaces.space import SpaceRequest, build_search_space, flatten_values, merge_skill_hints

from .skills import Skill, find_skill


def search_space_for(skill: Union[str, Skill], spec: Optional[Mapping[str, Any]] = None,
                     schema_file: Union[str, Path, None] = None) -> SearchSpace:
    """The space for ``spec`` (a merged, validated spec dict; None: the schema's defaults)."""
    skill = skill if isinstance(skill, Skill) else find_skill(skill)
    own = read_schema(skill.schema("train"), source=f"{skill.name} train schema")
    schema = own
    if schema_file is not None:
        schema = merge_skill_hints(read_schema(load_schema_file(schema_file), source=str(schema_file)), own)
    spec = spec or {}
    return build_search_space(schema, flatten_values(spec), SpaceRequest.from_automl_section(spec.get("automl")))
