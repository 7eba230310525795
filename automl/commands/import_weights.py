"""``tao-automl import-weights``: official or transformers RT-DETR weights -> a tao-automl checkpoint."""
from __future__ import annotations

import argparse

import yaml

from trainers.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-weights", help="convert official or transformers RT-DETR weights into a tao-automl checkpoint",
        description="Convert a transformers RTDetrForObjectDetection folder (config.json + model.safetensors, "
                    "or hf://ORG/NAME with a network) or an official lyuwenyu/RT-DETR .pth (v1 or v2) into a "
                    "checkpoint that load_model, train.pretrained_model_path and evaluate read.")
    parser.add_argument("--skill", required=True, choices=["rtdetr"])
    parser.add_argument("--source", required=True, choices=["hf", "official"])
    parser.add_argument("--input", required=True, help="folder, hf://ORG/NAME, or .pth file")
    parser.add_argument("--output", required=True, help="checkpoint file to write")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="official weights only: settings the tensor shapes cannot tell "
                             "(nheads, num_queries, eval_idx, enc_act, act, use_encoder_idx, dn_number)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trainers.rtdetr.weights import import_weights

    overrides = {}
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{item!r} is not KEY=VALUE")
        overrides[key.removeprefix("model.")] = yaml.safe_load(value)
    report = import_weights(args.source, args.input, args.output, overrides)
    print(report.summary())
    return 0
