"""``tao-automl validate``: check a spec (and overrides) the way every command does before it starts.

    tao-automl validate --skill rtdetr -e spec.yaml [--action train] [key=value ...]

Prints one line per problem (dotted key and why) and exits 2, or says the spec
is valid and exits 0.
"""
from __future__ import annotations

import argparse

from automl.commands import add_spec_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate", help="validate a spec against the skill's schemas",
        description="Validate a spec and key=value overrides: unknown keys (with a did-you-mean), types, "
                    "ranges, options, relations between keys, unsupported values, YAML syntax.")
    parser.add_argument("--action", default="train",
                        help="the action the spec is for; its '???' placeholders must be set (default: train)")
    add_spec_arguments(parser, "spec overrides, e.g. train.num_epochs=5")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from automl.skills import find_skill
    from automl.spec import load_spec, load_spec_dict

    skill = find_skill(args.skill)
    if skill.trainer_package:
        load_spec(skill, args.spec, args.overrides, args.action)
    else:
        load_spec_dict(skill, args.spec, args.overrides, args.action)
    print(f"{args.spec}: valid {skill.name} spec for {args.action}")
    return 0
