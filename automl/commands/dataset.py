"""``tao-automl dataset convert``: Pascal VOC xml or YOLO txt labels -> COCO json (optionally split)."""
from __future__ import annotations

import argparse
from pathlib import Path

from trainers.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dataset", help="prepare datasets (convert labels to COCO json)",
                                   description="Dataset preparation.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    convert = actions.add_parser(
        "convert", help="Pascal VOC xml or YOLO txt -> COCO json, with an optional seeded train/val split",
        description="Convert Pascal VOC xml files or YOLO txt labels into a COCO detection json. Category ids "
                    "start at 1 in the order of --classes. Bad boxes and missing images are skipped and "
                    "reported. With --split, --output is a folder that receives train.json and val.json.")
    convert.add_argument("--format", required=True, choices=["voc", "yolo"], help="the input label format")
    convert.add_argument("--input", required=True, type=Path,
                         help="folder of VOC .xml files, or of YOLO .txt labels (searched recursively)")
    convert.add_argument("--output", required=True, type=Path,
                         help="the COCO .json to write; with --split a folder for train.json and val.json")
    convert.add_argument("--images", type=Path, default=None,
                         help="folder of the images; file_name is relative to it (default: VOC: --input; "
                              "YOLO: the 'images' folder beside 'labels', else --input)")
    convert.add_argument("--classes", type=Path, default=None,
                         help="class names, one a line (or YOLO's data.yaml); fixes the order of ids 1..N "
                              "(default: VOC: names sorted; YOLO: classes.txt/data.yaml beside the labels)")
    convert.add_argument("--split", type=float, default=None, metavar="FRACTION",
                         help="train fraction, e.g. 0.8: write train.json and val.json")
    convert.add_argument("--seed", type=int, default=0, help="seed of the split's shuffle (default 0)")
    convert.add_argument("--skip-difficult", action="store_true", help="VOC: leave out objects marked difficult")
    convert.set_defaults(handler=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from trainers.rtdetr.data.convert import read_class_names, split_coco, voc_to_coco, write_coco, yolo_to_coco

    classes = read_class_names(args.classes) if args.classes else None
    if args.split is not None and args.output.suffix.lower() == ".json":
        raise UserError(f"--output {args.output}: with --split, give a folder (train.json and val.json go in it)")
    if args.format == "voc":
        coco, report = voc_to_coco(args.input, args.images, classes, skip_difficult=args.skip_difficult)
    else:
        if args.skip_difficult:
            raise UserError("--skip-difficult applies to --format voc only")
        coco, report = yolo_to_coco(args.input, args.images, classes)
    print(report.summary())
    names = ", ".join(f"{c['id']}={c['name']}" for c in coco["categories"])
    if args.split is None:
        write_coco(coco, args.output)
        print(f"wrote {args.output} ({len(coco['images'])} images; categories {names})")
        return 0
    train, val = split_coco(coco, args.split, args.seed)
    for name, part in (("train", train), ("val", val)):
        path = args.output / f"{name}.json"
        write_coco(part, path)
        print(f"wrote {path} ({len(part['images'])} images, {len(part['annotations'])} boxes)")
    print(f"categories {names}")
    return 0
