"""Build the search space of a schema (+ a spec, + the user's edits).

Selection, as in TAO (research report 3.1) with explicit edits:

- the requested names are ``hyperparameters`` when given, else the schema's
  ``automl_default_parameters``; then ``add`` and ``enable_disabled`` are
  added and ``remove`` taken away;
- a parameter the schema disables (``automl_enabled: false`` or listed in an
  ``automl_disabled_parameters``) is searched only when also listed in
  ``enable_disabled``; asking for it otherwise is an error that says so;
- a parameter that does nothing with the spec's settings (``x_active_when``:
  momentum with AdamW, lr_step_size with MultiStep, ema.decay with EMA off),
  or whose effect is not on the model (``x_no_effect``: loader workers) is
  left out with the reason, unless the user asked for it by name (then a
  conditional parameter when its controlling key is searched too);
- ``depends_on`` with ``> / >= / < / <=`` becomes a bound read from the parent's
  drawn value; ``/ k`` with ``depends_on`` becomes a derived value
  (parent // k); ``x_maximum_expr`` becomes an upper bound
  (num_select <= min(num_queries, num_queries * num_classes - 1)).

Ranges and scales follow :mod:`search_spaces.ranges`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from trainers.errors import UserError

from .expressions import ExpressionError, parse_expression
from .math_cond import MathCondError, parse_math_cond
from .names import did_you_mean
from .parameters import Bound, DerivedValue, ExcludedParameter, InfeasibleError, Parameter, SearchSpace
from .range_override import OVERRIDE_KEYS, apply_range_override
from .ranges import NotSearchable, static_parameter
from .schema_reader import ReadSchema, SchemaLeaf


@dataclasses.dataclass(frozen=True)
class SpaceRequest:
    """The user's edits to the default space (the spec's ``automl`` section, or the command line)."""

    hyperparameters: Tuple[str, ...] = ()
    add: Tuple[str, ...] = ()
    remove: Tuple[str, ...] = ()
    enable_disabled: Tuple[str, ...] = ()
    range_override: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_automl_section(cls, automl: Optional[Mapping[str, Any]]) -> "SpaceRequest":
        """From a spec's ``automl`` dict (keys as in trainers.rtdetr.config.automl)."""
        automl = automl or {}
        return cls(hyperparameters=tuple(automl.get("hyperparameters") or ()),
                   add=tuple(automl.get("add_hyperparameters") or ()),
                   remove=tuple(automl.get("remove_hyperparameters") or ()),
                   enable_disabled=tuple(automl.get("enable_disabled") or ()),
                   range_override=flatten_range_overrides(automl.get("range_override") or {}))


def flatten_range_overrides(overrides: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Accept both ``{"train.optim.lr": {low, high}}`` and the nested form a command-line override
    ``automl.range_override.train.optim.lr.low=1e-5`` produces (``{"train": {"optim": {"lr": {...}}}}``)."""
    flat: Dict[str, Any] = {}
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and not set(value) & set(OVERRIDE_KEYS):
            flat.update(flatten_range_overrides(value, name + "."))
        else:
            flat[name] = value
    return flat


def merge_skill_hints(schema: ReadSchema, hints: Optional[ReadSchema]) -> ReadSchema:
    """Give an external schema's leaves the skill's ``x_*`` knowledge of the same keys.

    NVIDIA's rtdetr schema does not say that momentum is unused with AdamW; the
    rtdetr skill's own schema does.  Keys the external schema already carries win.
    """
    if hints is None:
        return schema
    leaves = {}
    for name, leaf in schema.leaves.items():
        hint = hints.leaves.get(name)
        if hint is None:
            leaves[name] = leaf
            continue
        leaves[name] = dataclasses.replace(
            leaf,
            active_when=leaf.active_when or hint.active_when,
            maximum_expr=leaf.maximum_expr or hint.maximum_expr,
            no_effect=leaf.no_effect or hint.no_effect,
            supported_options=leaf.supported_options or hint.supported_options)
    return dataclasses.replace(schema, leaves=leaves)


def build_search_space(schema: ReadSchema, spec_values: Optional[Mapping[str, Any]] = None,
                       request: SpaceRequest = SpaceRequest()) -> SearchSpace:
    """The search space; ``spec_values`` are the spec's values by dotted name (schema defaults fill the rest)."""
    base = {name: leaf.default for name, leaf in schema.leaves.items() if leaf.has_default}
    base.update(spec_values or {})
    _check_names(schema, request)
    requested, explicit = _requested(schema, request)
    searched = set(requested)

    parameters: List[Parameter] = []
    derived: List[DerivedValue] = []
    excluded: List[ExcludedParameter] = []
    for name in requested:
        leaf = schema.leaves[name]
        reason = "requested by the user" if name in explicit else "in the schema's automl_default_parameters"
        try:
            item = _build_one(schema, leaf, base, searched, explicit, request, reason)
        except NotSearchable as why:
            excluded.append(ExcludedParameter(name, str(why)))
            searched.discard(name)
            continue
        if isinstance(item, DerivedValue):
            derived.append(item)
            searched.discard(name)
        else:
            parameters.append(item)
    parameters, dropped = _drop_dangling_conditions(parameters, searched, base)
    excluded.extend(dropped)
    parameters = _tighten_parents(parameters)
    return SearchSpace(parameters=tuple(_in_dependency_order(parameters)), derived=tuple(derived),
                       excluded=tuple(excluded), base_values=base, source=schema.source)


def _check_names(schema: ReadSchema, request: SpaceRequest) -> None:
    lists = [("automl.hyperparameters", request.hyperparameters), ("automl.add_hyperparameters", request.add),
             ("automl.remove_hyperparameters", request.remove), ("automl.enable_disabled", request.enable_disabled),
             ("automl.range_override", tuple(request.range_override))]
    for where, names in lists:
        for name in names:
            if name not in schema.leaves:
                if name in schema.containers:
                    raise UserError(f"{where}: {name!r} is a section; name one of its keys")
                hint = did_you_mean(name, list(schema.leaves), list(schema.leaves))
                suffix = f" (did you mean '{hint}'?)" if hint else ""
                raise UserError(f"{where}: {name!r} is not a parameter of {schema.source}{suffix}")


def _is_disabled(schema: ReadSchema, name: str) -> bool:
    return schema.leaves[name].automl_enabled is False or name in schema.disabled_parameters


def _requested(schema: ReadSchema, request: SpaceRequest) -> Tuple[List[str], set]:
    explicit = set(request.hyperparameters) | set(request.add) | set(request.enable_disabled)
    if request.hyperparameters:
        names = list(request.hyperparameters)
    else:
        names = [n for n in schema.default_parameters if n in schema.leaves]
    names += [n for n in list(request.add) + list(request.enable_disabled) if n not in names]
    names = [n for n in names if n not in set(request.remove)]
    for name in names:
        if name in explicit and _is_disabled(schema, name) and name not in request.enable_disabled:
            raise UserError(f"{name}: the schema disables it for AutoML (automl_enabled: false); "
                            f"list it in automl.enable_disabled to search it anyway")
    return names, explicit


def _build_one(schema: ReadSchema, leaf: SchemaLeaf, base: Mapping[str, Any], searched: set, explicit: set,
               request: SpaceRequest, reason: str):
    if _is_disabled(schema, leaf.name) and leaf.name not in request.enable_disabled:
        raise NotSearchable("disabled for AutoML in the schema (automl_enabled: false)")
    if leaf.no_effect and leaf.name not in explicit:
        raise NotSearchable(f"left out: {leaf.no_effect} (add it by name to search it anyway)")
    active_when = _active_when(leaf, base, searched, explicit)
    try:
        cond = parse_math_cond(leaf.math_cond)
    except MathCondError as error:
        raise NotSearchable(str(error)) from None
    if cond and cond.multiple_of and leaf.depends_on:
        return _derived(leaf, cond.multiple_of)
    override = request.range_override.get(leaf.name) or {}
    try:
        parameter = static_parameter(leaf, cond, reason)
    except NotSearchable:
        if not (isinstance(override, Mapping) and "low" in override and "high" in override):
            raise
        parameter = dataclasses.replace(static_parameter(_leaf_with_user_range(leaf, override), cond, reason),
                                        default=leaf.default if leaf.has_default else None)
    low_bounds, high_bounds, texts = _dynamic_bounds(leaf, cond, schema, base, searched)
    condition = " ".join(t for t in [parameter.condition if not texts else ""] + texts if t)
    parameter = dataclasses.replace(parameter, low_bounds=low_bounds, high_bounds=high_bounds,
                                    active_when=active_when, condition=condition or parameter.condition)
    if leaf.name in request.range_override:
        parameter = apply_range_override(parameter, leaf, cond, dict(request.range_override[leaf.name]))
    _check_feasible_against_fixed_values(parameter, base, searched)
    return parameter


def _check_feasible_against_fixed_values(parameter: Parameter, base: Mapping[str, Any], searched: set) -> None:
    """Bounds read only from spec values can be checked now: crop_max > crop_min = 1400 with max 1333 cannot be met."""
    names = {n for b in parameter.low_bounds + parameter.high_bounds for n in b.expression.names}
    if not names or names & searched:
        return
    try:
        if parameter.choices is not None:
            parameter.allowed_choices(base)
        else:
            parameter.bounds(base)
    except InfeasibleError:
        fixed = ", ".join(f"{n}={base.get(n)}" for n in sorted(names))
        raise NotSearchable(f"no value satisfies {parameter.condition} with {fixed}") from None


def _leaf_with_user_range(leaf: SchemaLeaf, override: Mapping[str, Any]) -> SchemaLeaf:
    """The leaf bounded by the user's range, for leaves whose own range gives no scale (default -1, max Infinity).

    The user's bounds are checked against the schema afterwards, by apply_range_override.
    """
    low, high = override["low"], override["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise UserError(f"automl.range_override.{leaf.name}: low and high must be numbers")
    middle = (low * high) ** 0.5 if low > 0 and high > 0 else (low + high) / 2
    return dataclasses.replace(leaf, minimum=low, maximum=high, default=middle)


def _active_when(leaf: SchemaLeaf, base: Mapping[str, Any], searched: set, explicit: set) -> Dict[str, Tuple]:
    conditions = {}
    for key, allowed in leaf.active_when.items():
        if key in searched:
            conditions[key] = tuple(allowed)
        elif key in base and base[key] not in allowed:
            shown = ", ".join(_show(v) for v in allowed)
            raise NotSearchable(f"does nothing: only used when {key} is {shown}, and the spec has "
                                f"{key}: {_show(base[key])}")
    return conditions


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _derived(leaf: SchemaLeaf, divisor: int) -> DerivedValue:
    expression = parse_expression(f"{leaf.depends_on} // {divisor}")
    kind = "int" if leaf.kind == "int" else "float"
    return DerivedValue(name=leaf.name, type=kind, expression=expression, low=leaf.minimum, high=leaf.maximum,
                        reason=f"derived, not searched: math_cond '{leaf.math_cond}' with depends_on "
                               f"{leaf.depends_on} sets it to {leaf.depends_on} // {divisor}")


def _dynamic_bounds(leaf: SchemaLeaf, cond, schema: ReadSchema, base: Mapping[str, Any],
                    searched: set) -> Tuple[Tuple[Bound, ...], Tuple[Bound, ...], List[str]]:
    lows: List[Bound] = []
    highs: List[Bound] = []
    texts: List[str] = []
    if leaf.depends_on and cond:
        parent = parse_expression(leaf.depends_on)
        for op, _ in cond.relations:
            if op in (">", ">="):
                lows.append(Bound(parent, exclusive=op == ">"))
            elif op in ("<", "<="):
                highs.append(Bound(parent, exclusive=op == "<"))
            elif op == "!=":
                raise NotSearchable(f"math_cond '{cond.text}' against {leaf.depends_on} is not supported")
            texts.append(f"{op} {leaf.depends_on}")
    if leaf.maximum_expr:
        try:
            expression = parse_expression(leaf.maximum_expr)
        except ExpressionError as error:
            raise NotSearchable(str(error)) from None
        missing = [n for n in expression.names if n not in searched and n not in base]
        if missing:
            raise NotSearchable(f"its bound {leaf.maximum_expr} reads {missing[0]}, which has no value")
        highs.append(Bound(expression))
        texts.append(f"<= {leaf.maximum_expr}")
    for bound in lows + highs:
        for name in bound.expression.names:
            if name not in searched and name not in base:
                raise NotSearchable(f"depends_on {name}, which has no value in the spec or schema")
    return tuple(lows), tuple(highs), texts


def _drop_dangling_conditions(parameters: List[Parameter], searched: set,
                              base: Mapping[str, Any]) -> Tuple[List[Parameter], List[ExcludedParameter]]:
    """A condition on a key that ended up not searched is decided by the spec value."""
    kept, dropped = [], []
    for parameter in parameters:
        conditions = dict(parameter.active_when)
        for key in list(conditions):
            if key not in searched:
                if key in base and base[key] not in conditions[key]:
                    dropped.append(ExcludedParameter(parameter.name, f"does nothing: only used when {key} is "
                                                     f"{', '.join(map(_show, conditions[key]))}"))
                    break
                del conditions[key]
        else:
            kept.append(dataclasses.replace(parameter, active_when=conditions))
    return kept, dropped


def _tighten_parents(parameters: List[Parameter]) -> List[Parameter]:
    """Keep every parent value feasible for its child: crop_min < crop_max.max for ``crop_max > crop_min``."""
    by_name = {p.name: p for p in parameters}
    for child in parameters:
        for bound in child.low_bounds:
            names = bound.expression.names
            if len(names) != 1 or bound.expression.text != names[0] or names[0] not in by_name:
                continue
            parent = by_name[names[0]]
            if parent.choices is not None or child.high is None:
                continue
            limit = child.high - (1 if bound.exclusive and parent.type == "int" else 0)
            if parent.high is not None and parent.high > limit:
                by_name[parent.name] = dataclasses.replace(
                    parent, high=limit, notes=parent.notes + (f"capped at {limit:g} so that {child.name} "
                                                              f"{bound.text('low')} stays possible",))
    return [by_name[p.name] for p in parameters]


def _in_dependency_order(parameters: Sequence[Parameter]) -> List[Parameter]:
    """Parents before dependants, otherwise the schema's order (a stable topological sort)."""
    names = {p.name for p in parameters}
    placed: List[Parameter] = []
    done: set = set()
    pending = list(parameters)
    while pending:
        progressed = False
        for parameter in list(pending):
            needs = [n for n in parameter.depends_on if n in names and n != parameter.name]
            if all(n in done for n in needs):
                placed.append(parameter)
                done.add(parameter.name)
                pending.remove(parameter)
                progressed = True
        if not progressed:
            cycle = ", ".join(p.name for p in pending)
            raise UserError(f"the search space has circular dependencies between: {cycle}")
    return placed


def flatten_values(spec: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    flat: Dict[str, Any] = {}
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_values(value, name + "."))
        else:
            flat[name] = value
    return flat

