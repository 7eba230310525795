"""The knobs that trade accuracy for speed, searched when latency is an objective, and the rules that
keep a sampled architecture consistent.  The one place for both.

Knobs (added to the default space; each has the range below unless the user's
``automl.range_override`` gives one):

=====================  ====================================================================
model.backbone         resnet_18 / resnet_34 / resnet_50, no deeper than the spec's
model.hidden_dim       {h/2, 3h/4, h} of the spec's h, multiples of model.nheads (the schema
                       disables it for plain sweeps; a latency sweep enables it)
model.dec_layers       [1, the spec's value]
model.num_queries      [the spec's value / 3, the spec's value]; num_select stays <= it
input_size             square sizes, multiples of 32, from half the spec's size (at least 64)
                       to the spec's size: sets train/eval_spatial_size, multi_scales and the
                       export size together
=====================  ====================================================================

Every knob shrinks the spec's own model (the spec is the largest model searched), so the knobs
are the ones a latency budget asks for; a range_override widens any of them.  The backbone is
not searched when there is nothing shallower (a resnet_18 spec).

The user's choices win: with an explicit ``automl.hyperparameters`` list only
the knobs named there are searched; ``automl.remove_hyperparameters`` takes
knobs away (name ``dataset.augmentation.train_spatial_size`` or
``eval_spatial_size`` to keep the input size); a spec that fixes
``export.input_height``/``input_width`` fixes the deploy size, so the input
size is not searched.

Latency only grows with each knob (a deeper backbone, a wider or deeper transformer, more
queries, a larger input), so a configuration at least as large in every knob as one measured over
the budget is over it too (:func:`at_least_as_slow`): the searcher tells such a proposal to Optuna
as infeasible and asks again, instead of spending a trial (and a measurement) on it.

Rules applied to every trial's spec (:func:`apply_latency_rules`):

- ``input_size`` s -> train_spatial_size / eval_spatial_size [s, s'] (s' keeps
  a non-square spec's aspect), multi_scales scaled by s / spec size, export
  input size the same;
- ``eval_idx`` -1 stays -1 (the last layer); a layer index is kept inside the
  sampled number of decoder layers;
- the encoder width ``feat_channels`` follows ``hidden_dim`` when the spec has
  them equal (every RT-DETR preset does);
- ``num_select`` <= ``num_queries`` (and < num_queries x num_classes).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from search_spaces.parameters import ExcludedParameter, Parameter, SearchSpace

INPUT_SIZE = "input_size"
SIZE_MULTIPLE = 32
MIN_INPUT_SIZE = 64
MAX_SIZE_CHOICES = 6
BACKBONE_CHOICES = ("resnet_18", "resnet_34", "resnet_50")
KNOBS = ("model.backbone", "model.hidden_dim", "model.dec_layers", "model.num_queries", "model.num_select")
# Keys that name the input size in automl.remove_hyperparameters / hyperparameters.
SIZE_KEYS = ("dataset.augmentation.train_spatial_size", "dataset.augmentation.eval_spatial_size", INPUT_SIZE)
NOTE = "range set by the latency objective (automl/sweep/latency_space.py)"


def latency_search_space(skill, spec: Mapping[str, Any], schema_file=None,
                         fixed_export_size: Optional[Sequence[int]] = None) -> SearchSpace:
    """The sweep's space when latency is an objective: the ordinary space (schema defaults and the
    user's edits) with the knobs added, plus ``input_size``."""
    from automl.search_space import search_space_for

    automl, search_size = latency_automl_section(spec)
    space = search_space_for(skill, {**dict(spec), "automl": automl}, schema_file)
    explicit = list((spec.get("automl") or {}).get("hyperparameters") or [])
    if explicit and not [n for n in explicit if n not in SIZE_KEYS]:   # only the input size was asked for
        space = dataclasses.replace(space, parameters=(), derived=())
    return with_input_size(mark_latency_ranges(space, spec), spec, search_size, fixed_export_size)


def latency_automl_section(spec: Mapping[str, Any]) -> Tuple[Dict[str, Any], bool]:
    """The spec's ``automl`` section with the knobs added, and whether to search the input size.

    Pass the result (as the spec's ``automl``) to the ordinary space builder: the knobs then follow
    every rule of the schema (bounds, num_select <= num_queries, remove_hyperparameters).
    """
    automl = copy.deepcopy(dict(spec.get("automl") or {}))
    explicit = list(automl.get("hyperparameters") or [])
    removed = set(automl.get("remove_hyperparameters") or [])
    asked = set(explicit) | set(automl.get("add_hyperparameters") or []) | set(automl.get("enable_disabled") or [])
    knobs = [k for k in KNOBS if k not in removed and (not explicit or k in explicit)]
    search_size = (not (set(SIZE_KEYS) & removed)) and (not explicit or bool(set(SIZE_KEYS) & asked))
    overrides = dict(automl.get("range_override") or {})
    for name, override in default_ranges(spec).items():
        if name in knobs and not _has_override(overrides, name):
            if len(override.get("choices", [None, None])) < 2 and name not in explicit:
                knobs.remove(name)   # nothing smaller to try (a resnet_18 spec's backbone)
                continue
            overrides[name] = override
    # The size keys are list values the builder cannot search: the input_size parameter stands for them.
    for key in ("hyperparameters", "add_hyperparameters", "enable_disabled"):
        if automl.get(key):
            automl[key] = [name for name in automl[key] if name not in SIZE_KEYS]
    if not explicit:
        automl["add_hyperparameters"] = _unique(list(automl.get("add_hyperparameters") or []) +
                                                [k for k in knobs if k != "model.hidden_dim"])
    if "model.hidden_dim" in knobs:   # the schema disables it for plain sweeps
        automl["enable_disabled"] = _unique(list(automl.get("enable_disabled") or []) + ["model.hidden_dim"])
    automl["range_override"] = overrides
    automl["remove_hyperparameters"] = [n for n in removed if n not in SIZE_KEYS]
    return automl, search_size


def default_ranges(spec: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The knobs' ranges for this spec (see the module's table)."""
    model = spec.get("model") or {}
    hidden = int(model.get("hidden_dim", 256))
    heads = max(1, int(model.get("nheads", 8)))
    widths = sorted({w for w in (hidden // 2, (hidden * 3) // 4, hidden) if w >= 8 and w % heads == 0} | {hidden})
    decoder = int(model.get("dec_layers", 6))
    queries = int(model.get("num_queries", 300))
    backbone = str(model.get("backbone", "resnet_50"))
    depth = BACKBONE_CHOICES.index(backbone) + 1 if backbone in BACKBONE_CHOICES else len(BACKBONE_CHOICES)
    return {
        "model.backbone": {"choices": list(BACKBONE_CHOICES[:depth])},
        "model.hidden_dim": {"choices": widths},
        "model.dec_layers": {"low": 1, "high": max(1, decoder)},
        "model.num_queries": {"low": max(1, queries // 3), "high": max(1, queries)},
    }


def input_size_choices(base: int) -> List[int]:
    """Square sizes, multiples of 32, from half of ``base`` (at least 64) to ``base``, at most 6."""
    top = max(SIZE_MULTIPLE, (int(base) // SIZE_MULTIPLE) * SIZE_MULTIPLE)
    low = max(MIN_INPUT_SIZE, ((top // 2) + SIZE_MULTIPLE - 1) // SIZE_MULTIPLE * SIZE_MULTIPLE)
    sizes = list(range(min(low, top), top + 1, SIZE_MULTIPLE))
    if len(sizes) > MAX_SIZE_CHOICES:   # evenly spread, both ends kept
        step = (len(sizes) - 1) / (MAX_SIZE_CHOICES - 1)
        sizes = sorted({sizes[round(i * step)] for i in range(MAX_SIZE_CHOICES)})
    return sizes


def with_input_size(space: SearchSpace, spec: Mapping[str, Any], search: bool,
                    fixed_export_size: Optional[Sequence[int]] = None) -> SearchSpace:
    """``space`` plus the ``input_size`` parameter (or the reason it is left out)."""
    augmentation = (spec.get("dataset") or {}).get("augmentation") or {}
    base = int((augmentation.get("train_spatial_size") or [640, 640])[0])
    choices = input_size_choices(base)
    reason = None
    if not search:
        reason = "left out: automl.hyperparameters / remove_hyperparameters keep the input size"
    elif fixed_export_size:
        reason = (f"left out: the spec fixes the deploy size (export.input_height x input_width = "
                  f"{fixed_export_size[0]} x {fixed_export_size[1]})")
    elif len(choices) < 2:
        reason = f"left out: no smaller multiple of {SIZE_MULTIPLE} of at least {MIN_INPUT_SIZE} below {base}"
    if reason:
        return dataclasses.replace(space, excluded=space.excluded + (ExcludedParameter(INPUT_SIZE, reason),))
    parameter = Parameter(name=INPUT_SIZE, type="int", default=base, choices=tuple(choices),
                          reason="latency objective: train/eval spatial size, multi_scales and export size "
                                 "together", notes=(NOTE,))
    return dataclasses.replace(space, parameters=space.parameters + (parameter,),
                               base_values={**dict(space.base_values), INPUT_SIZE: base})


def mark_latency_ranges(space: SearchSpace, spec: Mapping[str, Any]) -> SearchSpace:
    """Say where the knobs' ranges came from (the builder notes them as a user range_override)."""
    user = (spec.get("automl") or {}).get("range_override") or {}
    parameters = tuple(
        dataclasses.replace(p, notes=tuple(n for n in p.notes if "range_override" not in n) + (NOTE,))
        if p.name in KNOBS and not _has_override(user, p.name) and p.name in default_ranges(spec) else p
        for p in space.parameters)
    return dataclasses.replace(space, parameters=parameters)


# Sampled keys whose larger value never makes the deployed model faster, and the order of the backbones.
MONOTONE_KEYS = ("model.backbone", "model.hidden_dim", "model.dec_layers", "model.num_queries", "model.num_select",
                 "model.enc_layers", "model.dim_feedforward", INPUT_SIZE)


def at_least_as_slow(candidate: Mapping[str, Any], reference: Mapping[str, Any]) -> bool:
    """True when the model of ``candidate`` (a trial's sampled values) cannot be faster than the one of
    ``reference``: every key of :data:`MONOTONE_KEYS` at least as large (backbones in
    :data:`BACKBONE_CHOICES` order), every other architecture or export value equal, and the same keys
    sampled.  Training values (lr, weight decay, augmentation) do not change latency and are ignored."""
    from .latency import ARCHITECTURE_KEYS

    def matters(key: str) -> bool:
        return key in MONOTONE_KEYS or key.startswith("export.") or (
            key.startswith("model.") and key[len("model."):] in ARCHITECTURE_KEYS)

    keys = {k for k in candidate if matters(k)} | {k for k in reference if matters(k)}
    for key in keys:
        if key not in candidate or key not in reference:
            return False
        mine, theirs = candidate[key], reference[key]
        if key == "model.backbone":
            if mine not in BACKBONE_CHOICES or theirs not in BACKBONE_CHOICES:
                if mine != theirs:
                    return False
            elif BACKBONE_CHOICES.index(mine) < BACKBONE_CHOICES.index(theirs):
                return False
        elif key in MONOTONE_KEYS:
            try:
                if float(mine) < float(theirs):
                    return False
            except (TypeError, ValueError):
                return False
        elif mine != theirs:
            return False
    return True


def apply_latency_rules(spec: Dict[str, Any], values: Mapping[str, Any], base_spec: Mapping[str, Any]) -> Dict[str, Any]:
    """Make a trial's spec (``values`` already applied, ``input_size`` not) consistent; returns it."""
    base_model = base_spec.get("model") or {}
    model = spec.setdefault("model", {})
    size = values.get(INPUT_SIZE)
    if size is not None:
        _set_input_size(spec, int(size), base_spec)
    if "model.dec_layers" in values:
        layers, base_idx = int(model["dec_layers"]), int(base_model.get("eval_idx", -1))
        model["eval_idx"] = -1 if base_idx < 0 else min(base_idx, layers - 1)
    if "model.hidden_dim" in values:
        base_channels = list(base_model.get("feat_channels") or [])
        if base_channels and all(int(c) == int(base_model.get("hidden_dim", -1)) for c in base_channels):
            model["feat_channels"] = [int(model["hidden_dim"])] * len(base_channels)
    if "num_queries" in model and "num_select" in model:
        classes = int((spec.get("dataset") or {}).get("num_classes") or 1)
        limit = min(int(model["num_queries"]), int(model["num_queries"]) * classes - 1) if classes > 1 \
            else int(model["num_queries"])
        model["num_select"] = max(1, min(int(model["num_select"]), limit))
    return spec


def _set_input_size(spec: Dict[str, Any], size: int, base_spec: Mapping[str, Any]) -> None:
    augmentation = spec.setdefault("dataset", {}).setdefault("augmentation", {})
    base = ((base_spec.get("dataset") or {}).get("augmentation") or {})
    base_h, base_w = (int(v) for v in (base.get("train_spatial_size") or [640, 640]))
    width = max(SIZE_MULTIPLE, round(base_w * size / base_h / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    augmentation["train_spatial_size"] = [size, width]
    eval_h, eval_w = (int(v) for v in (base.get("eval_spatial_size") or [base_h, base_w]))
    augmentation["eval_spatial_size"] = [max(SIZE_MULTIPLE, round(eval_h * size / base_h / SIZE_MULTIPLE) * SIZE_MULTIPLE),
                                         max(SIZE_MULTIPLE, round(eval_w * size / base_h / SIZE_MULTIPLE) * SIZE_MULTIPLE)]
    scales = base.get("multi_scales")
    if scales:
        augmentation["multi_scales"] = sorted({max(SIZE_MULTIPLE, round(int(s) * size / base_h / SIZE_MULTIPLE)
                                                   * SIZE_MULTIPLE) for s in scales})
    export = spec.setdefault("export", {})
    export["input_height"], export["input_width"] = augmentation["eval_spatial_size"]


def _has_override(overrides: Mapping[str, Any], name: str) -> bool:
    """A user range for ``name``, flat (``"model.backbone": {...}``) or nested (``model: {backbone: {...}}``)."""
    if name in overrides:
        return True
    node: Any = overrides
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _unique(names: List[str]) -> List[str]:
    return list(dict.fromkeys(names))
