"""Broken annotation files (evaluate reads the test split)."""
from __future__ import annotations

import json
import math

from ..world import write_json
from .registry import argv, case, coco_with, evaluate_on, input_file


# -- annotation files (evaluate reads the test split) ---------------------------------------------------
@case("annotations")
def json_not_json(world, folder):
    path = input_file(folder, "broken.json")
    path.write_text('{"images": [')
    return evaluate_on(world, folder, path), "broken.json"


@case("annotations")
def json_zero_bytes(world, folder):
    path = input_file(folder, "broken.json")
    path.write_bytes(b"")
    return evaluate_on(world, folder, path), "broken.json"


@case("annotations")
def json_missing(world, folder):
    return evaluate_on(world, folder, folder / "in" / "absent.json"), "absent.json"


@case("annotations")
def json_a_list(world, folder):
    return evaluate_on(world, folder, write_json([1, 2], folder / "in" / "broken.json")), "broken.json"


@case("annotations")
def json_annotations_not_a_list(world, folder):
    return evaluate_on(world, folder, coco_with(world, folder, lambda c: c.update(annotations={"a": 1}))), \
        "annotations"


@case("annotations")
def json_duplicate_image_ids(world, folder):
    def change(coco):
        coco["images"][1]["id"] = coco["images"][0]["id"]
    return evaluate_on(world, folder, coco_with(world, folder, change)), "appears twice"


def _every_box(change):
    def apply(coco):
        for annotation in coco["annotations"]:
            change(annotation)
    return apply


@case("annotations")
def boxes_all_nan(world, folder):
    path = folder / "in" / "broken.json"
    coco = world.coco("val")
    for annotation in coco["annotations"]:
        annotation["bbox"] = [math.nan, 1.0, 5.0, 5.0]
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(coco))          # json.dumps writes NaN, which Python's json reads back
    return evaluate_on(world, folder, path), "broken.json"


@case("annotations")
def boxes_all_negative(world, folder):
    change = _every_box(lambda a: a.update(bbox=[a["bbox"][0], a["bbox"][1], -a["bbox"][2], -4.0]))
    return evaluate_on(world, folder, coco_with(world, folder, change)), "broken.json"


@case("annotations")
def boxes_all_outside_the_image(world, folder):
    change = _every_box(lambda a: a.update(bbox=[500.0, 500.0, 10.0, 10.0]))
    return evaluate_on(world, folder, coco_with(world, folder, change)), "broken.json"


@case("annotations")
def annotations_all_for_unknown_images(world, folder):
    return evaluate_on(world, folder, coco_with(world, folder, _every_box(lambda a: a.update(image_id=999)))), \
        "broken.json"


@case("annotations")
def annotations_all_of_unknown_categories(world, folder):
    return evaluate_on(world, folder, coco_with(world, folder, _every_box(lambda a: a.update(category_id="cat")))), \
        "broken.json"


@case("annotations")
def split_without_images(world, folder):
    return evaluate_on(world, folder, coco_with(world, folder, lambda c: c.update(images=[], annotations=[]))), \
        "broken.json"


@case("annotations")
def train_split_empty(world, folder):
    path = coco_with(world, folder, lambda c: c.update(images=[], annotations=[]))
    dataset = {**world.spec["dataset"], "train_data_sources": [{"json_file": str(path),
                                                                "image_dir": str(world.data["train_dir"])}]}
    return argv("train", world, folder, dataset=dataset), "broken.json"


@case("annotations")
def num_classes_too_small(world, folder):
    return argv("train", world, folder, "dataset.num_classes=1"), "num_classes"


@case("annotations")
def images_all_missing(world, folder):
    empty = folder / "in" / "no_images"
    empty.mkdir(parents=True)
    return evaluate_on(world, folder, world.data["val"], empty), "missing"


@case("annotations")
def image_dir_missing(world, folder):
    return evaluate_on(world, folder, world.data["val"], folder / "in" / "nowhere"), "nowhere"
