"""Dataclass fields that carry TAO's schema metadata.

Every config field of the trainer is declared with :func:`param` (a leaf) or
:func:`section` (a nested dataclass).  The metadata is what the skill-folder
generator turns into ``train.schema.json`` (TAO's format: ``minimum``,
``maximum``, ``enum``, ``option_weights``, ``math_cond``, ``depends_on``,
``parent_param``, ``automl_enabled``, ``popular``), so bounds and AutoML flags
live next to the default they describe and nowhere else.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Callable, Mapping, Optional, Sequence

INF = math.inf

# Metadata key under which every field's schema facts are stored.
SCHEMA_KEY = "tao_schema"


def param(
    default: Any,
    *,
    description: str,
    title: Optional[str] = None,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    enum: Optional[Sequence[Any]] = None,
    option_weights: Optional[Sequence[float]] = None,
    math_cond: Optional[str] = None,
    depends_on: Optional[str] = None,
    parent_param: bool = False,
    automl_enabled: Optional[bool] = None,
    popular: bool = False,
    required: bool = False,
    value_type: Optional[str] = None,
    pattern: Optional[str] = None,
    active_when: Optional[Mapping[str, Sequence[Any]]] = None,
    maximum_expr: Optional[str] = None,
    no_effect: Optional[str] = None,
) -> Any:
    """A leaf config field.

    ``automl_enabled`` is tri-state as in TAO: True puts the field in the
    default search space, False lists it as disabled, None leaves it out of
    both lists (searchable only when a user asks for it).  ``value_type``
    overrides the TAO type name the generator would infer from the default
    (for example ``"ordered_int"``).

    Three extensions (written as ``x_*`` keys, which NVIDIA's readers ignore)
    tell the search-space builder what the trainer does with the value:

    - ``active_when``: ``{dotted_key: [values]}``; the field only has an effect
      when every named key holds one of the values (momentum only with SGD).
    - ``maximum_expr``: an upper bound that depends on other keys, written as
      an arithmetic expression over dotted names, e.g.
      ``"min(model.num_queries, model.num_queries * dataset.num_classes - 1)"``.
    - ``no_effect``: why searching the field cannot change the trained model
      (data-loader workers change speed only); such fields are left out of the
      default search space with this reason.
    """
    meta = {
        "title": title,
        "description": description,
        "minimum": minimum,
        "maximum": maximum,
        "enum": list(enum) if enum is not None else None,
        "option_weights": list(option_weights) if option_weights is not None else None,
        "math_cond": math_cond,
        "depends_on": depends_on,
        "parent_param": parent_param,
        "automl_enabled": automl_enabled,
        "popular": popular,
        "required": required,
        "value_type": value_type,
        "pattern": pattern,
        "active_when": {k: list(v) for k, v in active_when.items()} if active_when else None,
        "maximum_expr": maximum_expr,
        "no_effect": no_effect,
    }
    if option_weights is not None and (enum is None or len(option_weights) != len(enum)):
        raise ValueError(f"option_weights must align with enum for {description!r}")
    if isinstance(default, (list, dict)):
        factory: Callable[[], Any] = lambda d=default: copy.deepcopy(d)  # noqa: E731
        return dataclasses.field(default_factory=factory, metadata={SCHEMA_KEY: meta})
    return dataclasses.field(default=default, metadata={SCHEMA_KEY: meta})


def section(cls: type, *, description: str, title: Optional[str] = None,
            automl_enabled: Optional[bool] = False, default_factory: Optional[Callable[[], Any]] = None,
            required: bool = False, searchable: bool = True) -> Any:
    """A nested dataclass field (TAO's ``collection``).

    ``searchable=False`` drops the AutoML defaults of everything below: a
    distillation teacher re-uses ModelConfig, but its architecture is fixed by
    its checkpoint and must never be sampled.
    """
    meta = {"title": title, "description": description, "automl_enabled": automl_enabled,
            "required": required, "value_type": "collection", "searchable": searchable}
    return dataclasses.field(default_factory=default_factory or cls, metadata={SCHEMA_KEY: meta})


def schema_meta(field: dataclasses.Field) -> dict:
    """The schema metadata of a field declared with :func:`param` or :func:`section`."""
    try:
        return field.metadata[SCHEMA_KEY]
    except KeyError:
        raise TypeError(f"config field {field.name!r} was not declared with param() or section()") from None
