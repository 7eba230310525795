"""``automl.*`` (ours): how a sweep changes the schema's default search space.

The default space is the train schema's ``automl_default_parameters``.  These
keys edit it by dotted parameter path; ``automl_policy`` is deliberately not
here: it is a workflow argument (``--automl-policy``), never a spec key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from .fields import param


@dataclass
class AutomlConfig:
    """Edits to the default search space."""

    hyperparameters: List[str] = param(
        [], automl_enabled=False,
        description="When not empty, search exactly these parameters instead of the schema's defaults.")
    add_hyperparameters: List[str] = param(
        [], automl_enabled=False, description="Parameters to search in addition to the defaults.")
    remove_hyperparameters: List[str] = param(
        [], automl_enabled=False, description="Parameters to leave at their spec value.")
    enable_disabled: List[str] = param(
        [], automl_enabled=False,
        description="Parameters the schema marks automl_enabled: false to search anyway "
                    "(listing one here also adds it to the search).")
    range_override: Dict[str, Dict[str, Any]] = param(
        {}, automl_enabled=False, value_type="collection",
        description="Per parameter: {low, high, log, choices, weights, step} replacing the derived range, "
                    "inside the schema's bounds.")
