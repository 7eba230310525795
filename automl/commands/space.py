"""``tao-automl space``: print the search space a sweep would use, and why each parameter is in or out.

    tao-automl space --skill rtdetr                       # the skill's train schema and defaults
    tao-automl space --skill rtdetr --schema FILE          # any TAO train schema (NVIDIA's too)
    tao-automl space --skill rtdetr -e spec.yaml [key=value ...] [--json]
    tao-automl space --skill rtdetr [-e spec.yaml] --objective map50-latency   # with the latency knobs

With a spec, its values decide which parameters matter (momentum only with
SGD) and its ``automl`` section edits the space.  When latency is an objective
(``--objective map50-latency``, or the spec's ``automl.automl_objective`` /
a non-zero ``automl.automl_latency_budget_ms``, as ``sweep`` reads them) the
space is the one a latency-aware sweep searches: the knobs that trade accuracy
for speed and ``input_size`` join it (automl/sweep/latency_space.py).
"""
from __future__ import annotations

import argparse
import json
from typing import Any, List, Mapping, Optional

from search_spaces.parameters import SearchSpace


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "space", help="print the hyperparameter search space of a skill's train schema",
        description="Print the search space derived from a TAO train schema: name, type, range or choices, "
                    "scale, weights, condition, and why each parameter is searched or left out.")
    parser.add_argument("--skill", required=True, help="skill name (rtdetr) or skill folder")
    parser.add_argument("--schema", help="a train.schema.json to read instead of the skill's own")
    parser.add_argument("-e", "--experiment-spec", dest="spec", help="a spec whose values and automl section apply")
    parser.add_argument("--json", action="store_true", help='print {"parameters": [...]} as JSON')
    parser.add_argument("--objective", help="map50 | map50-latency: the space of a sweep with this objective "
                                            "(default: the spec's automl.automl_objective)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="spec overrides (with -e or alone)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    space = space_for(args.skill, args.schema, args.spec, args.overrides, objective=args.objective)
    if args.json:
        print(json.dumps(space.to_json(), indent=2, default=str))
    else:
        print("\n".join(render_table(space)))
    return 0


def space_for(skill_name: str, schema_file, spec_path, overrides, objective: Optional[str] = None) -> SearchSpace:
    """The space for the command's arguments: the one ``sweep`` would search with the same spec and objective."""
    from automl.search_space import search_space_for
    from automl.skills import find_skill
    from automl.spec import load_spec_dict

    skill = find_skill(skill_name)
    spec = load_spec_dict(skill, spec_path, overrides, "train") if (spec_path or overrides) else None
    if not latency_objective(spec, objective):
        return search_space_for(skill, spec, schema_file)
    from automl.commands.sweep import _explicit_export_size
    from automl.sweep.latency_space import latency_search_space

    if spec is None:   # the latency knobs' ranges come from the spec's model: the defaults' here
        spec = load_spec_dict(skill, None, [], "train")
    return latency_search_space(skill, spec, schema_file, _explicit_export_size(spec_path, list(overrides or [])))


def latency_objective(spec: Optional[Mapping[str, Any]], objective: Optional[str]) -> bool:
    """True when a sweep would measure latency: ``--objective``, else the spec's automl section (a budget
    other than 0 implies map50-latency, as in automl/sweep/settings.py)."""
    from automl.sweep.settings import OBJECTIVES
    from trainers.errors import UserError

    if objective is not None:
        if objective not in OBJECTIVES:
            raise UserError(f"--objective {objective}: expected one of {', '.join(OBJECTIVES)}")
        return objective == "map50-latency"
    automl = (spec or {}).get("automl") or {}
    return automl.get("automl_objective") == "map50-latency" or bool(automl.get("automl_latency_budget_ms") or 0)


def render_table(space: SearchSpace) -> List[str]:
    rows = [("parameter", "type", "range / choices", "scale", "condition", "why")]
    for p in space.parameters:
        condition = p.condition
        if p.active_when:
            when = " and ".join(f"{k} in {list(v)}" for k, v in p.active_when.items())
            condition = f"{condition}; only when {when}" if condition else f"only when {when}"
        why = "; ".join((p.reason,) + p.notes)
        scale = "log" if p.log else ("weighted" if p.weights else ("linear" if p.choices is None else "-"))
        rows.append((p.name, p.type, p.describe_range(), scale, condition or "-", why))
    for d in space.derived:
        rows.append((d.name, d.type, f"= {d.expression.text}", "-", "derived", d.reason))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [f"Search space from {space.source}: {len(space.parameters)} searched, "
             f"{len(space.derived)} derived, {len(space.excluded)} left out", ""]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])
    if space.excluded:
        lines += ["", "Left out:"]
        width = max(len(e.name) for e in space.excluded)
        lines += [f"  {e.name.ljust(width)}  {e.reason}" for e in space.excluded]
    return lines
