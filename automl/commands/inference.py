"""``tao-automl inference``: draw a checkpoint's detections on images and write them as COCO results.

    tao-automl inference --skill rtdetr -e spec.yaml inference.checkpoint=PATH [key=value ...]

Reads ``dataset.infer_data_sources.image_dir`` (folders, images.tar.gz,
HDF5 files) and writes ``images_annotated/``, ``labels/`` and
``results.json`` to ``inference.results_dir`` (default
``<results_dir>/inference``); prints a one-line summary and where they are.
"""
from __future__ import annotations

import argparse

from automl.commands import add_spec_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inference", help="draw a checkpoint's detections on images; write COCO results",
        description="Run inference.checkpoint on dataset.infer_data_sources.image_dir (folders, .tar.gz "
                    "archives, .h5 files) and keep detections scored at least inference.conf_threshold: "
                    "annotated images in the inference.color_map colours, KITTI label files and a COCO "
                    "results.json.")
    add_spec_arguments(parser, "e.g. inference.checkpoint=model.pth inference.conf_threshold=0.4")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from automl.skills import find_skill
    from automl.spec import load_spec
    from trainers.rtdetr.inference import run_inference

    cfg = load_spec(find_skill(args.skill), args.spec, args.overrides, "inference")
    run_inference(cfg)
    return 0
