"""The search space of a sweep: the skill's train schema, the spec's values and its ``automl`` edits.

    spec = load_spec_dict("rtdetr", "spec.yaml", overrides)
    space = search_space_for("rtdetr", spec)
    values = suggest_configuration(trial, space)          # or sample_configuration(space, rng)
    trial_spec = apply_values(spec, values)               # then write it and run the trainer

``schema_file`` reads another TAO train schema (NVIDIA's, say) instead of the
skill's own; when it describes the same network (``x_tao_schema.network_arch``)
the skill's knowledge of its trainer (``x_*`` hints such as "momentum only
with SGD") still applies to keys of the same name.  Another network's schema
is read as it is.
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
    own_document = skill.schema("train")
    own = read_schema(own_document, source=f"{skill.name} train schema")
    schema = own
    if schema_file is not None:
        document = load_schema_file(schema_file)
        schema = read_schema(document, source=str(schema_file))
        if _network(document) is not None and _network(document) == _network(own_document):
            schema = merge_skill_hints(schema, own)

    spec = spec or {}
    return build_search_space(schema, flatten_values(spec), SpaceRequest.from_automl_section(spec.get("automl")))


def _network(document: Mapping[str, Any]) -> Optional[str]:
    meta = document.get("x_tao_schema")
    return meta.get("network_arch") if isinstance(meta, dict) else None
