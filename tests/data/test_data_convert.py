"""`tao-automl dataset convert`: VOC and YOLO labels to COCO json, seeded split."""
from __future__ import annotations

import json

import pytest

from automl.cli import main
from trainers.errors import UserError
from trainers.rtdetr.data.convert import split_coco, voc_to_coco, yolo_to_coco

from .helpers import write_image

VOC_XML = """<annotation>
  <filename>{name}</filename>
  <size><width>100</width><height>50</height><depth>3</depth></size>
  {objects}
</annotation>"""
VOC_OBJECT = "<object><name>{cls}</name><difficult>{difficult}</difficult><bndbox><xmin>{0}</xmin><ymin>{1}</ymin>" \
             "<xmax>{2}</xmax><ymax>{3}</ymax></bndbox></object>"


def voc_folder(tmp_path, images=3):
    for index in range(images):
        name = f"im{index}.jpg"
        write_image(tmp_path / "JPEGImages" / name, size=(100, 50), fmt="JPEG")
        objects = [VOC_OBJECT.format(10, 5, 40, 45, cls="dog", difficult=0),
                   VOC_OBJECT.format(50, 10, 130, 30, cls="cat", difficult=index % 2)]  # runs past the right edge
        (tmp_path / "Annotations").mkdir(exist_ok=True)
        (tmp_path / "Annotations" / f"im{index}.xml").write_text(VOC_XML.format(name=name, objects="".join(objects)))
    return tmp_path / "Annotations", tmp_path / "JPEGImages"


def test_voc_boxes_become_coco_xywh_with_ids_from_one(tmp_path):
    xml_dir, images = voc_folder(tmp_path)
    coco, report = voc_to_coco(xml_dir, images)
    assert [c["name"] for c in coco["categories"]] == ["cat", "dog"] and coco["categories"][0]["id"] == 1
    first = [a for a in coco["annotations"] if a["image_id"] == 1]
    assert first[0]["bbox"] == [10, 5, 30, 40] and first[0]["category_id"] == 2
    assert first[1]["bbox"] == [50, 10, 50, 20]  # clipped at x = 100
    assert report.noted_count("clipped to the image") == 3
    assert coco["images"][0] == {"id": 1, "file_name": "im0.jpg", "width": 100, "height": 50}


def test_voc_classes_file_fixes_the_order_and_unknown_names_are_skipped(tmp_path):
    xml_dir, images = voc_folder(tmp_path, images=1)
    coco, report = voc_to_coco(xml_dir, images, classes=["dog"])
    assert [c["name"] for c in coco["categories"]] == ["dog"] and len(coco["annotations"]) == 1
    assert report.skipped_count("with a class not in --classes") == 1


def test_voc_difficult_objects_can_be_left_out(tmp_path):
    xml_dir, images = voc_folder(tmp_path, images=2)
    coco, _ = voc_to_coco(xml_dir, images, skip_difficult=True)
    assert len(coco["annotations"]) == 3


def test_yolo_centre_boxes_scale_by_the_image_and_bad_lines_are_skipped(tmp_path):
    write_image(tmp_path / "images" / "a.png", size=(200, 100))
    write_image(tmp_path / "images" / "b.png", size=(200, 100))  # no label file: an image without boxes
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0 0.1\n7 0.5 0.5 0.1 0.1\nnot a line\n")
    (tmp_path / "classes.txt").write_text("car\nbus\n")
    coco, report = yolo_to_coco(tmp_path / "labels")
    assert [c["name"] for c in coco["categories"]] == ["car", "bus"]
    assert coco["annotations"] == [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [80.0, 30.0, 40.0, 40.0],
                                    "area": 1600.0, "iscrowd": 0}]
    assert report.skipped_count("with zero or negative size") == 1
    assert report.skipped_count("with a class index outside the class list") == 1
    assert report.skipped_count("not of the form 'class cx cy w h'") == 1
    assert report.images_without_boxes == 1


def test_split_is_seeded_and_disjoint(tmp_path):
    coco = {"images": [{"id": i} for i in range(1, 11)],
            "annotations": [{"id": i, "image_id": i} for i in range(1, 11)], "categories": [{"id": 1}]}
    train, val = split_coco(coco, 0.8, seed=0)
    again, _ = split_coco(coco, 0.8, seed=0)
    other, _ = split_coco(coco, 0.8, seed=1)
    train_ids = {i["id"] for i in train["images"]}
    assert len(train_ids) == 8 and not train_ids & {i["id"] for i in val["images"]}
    assert train == again and train != other
    assert {a["image_id"] for a in val["annotations"]} == {i["id"] for i in val["images"]}
    with pytest.raises(UserError, match="between 0 and 1"):
        split_coco(coco, 1.5)


def test_the_command_writes_train_and_val_json(tmp_path, capsys):
    xml_dir, images = voc_folder(tmp_path, images=4)
    out = tmp_path / "coco"
    code = main(["dataset", "convert", "--format", "voc", "--input", str(xml_dir), "--images", str(images),
                 "--output", str(out), "--split", "0.5", "--seed", "3"])
    assert code == 0
    train, val = json.loads((out / "train.json").read_text()), json.loads((out / "val.json").read_text())
    assert len(train["images"]) == 2 and len(val["images"]) == 2
    assert "converted: 4 images, 8 boxes" in capsys.readouterr().out


def test_the_command_exits_2_with_one_line_on_bad_input(tmp_path, capsys):
    code = main(["dataset", "convert", "--format", "voc", "--input", str(tmp_path), "--output", str(tmp_path / "x.json")])
    assert code == 2
    assert capsys.readouterr().err.strip().endswith("no .xml files")


def test_the_shipped_raccoon_example_loads_cleanly():
    from pathlib import Path

    from trainers.rtdetr.data import build_dataset

    from .helpers import spec

    root = Path(__file__).resolve().parents[2] / "examples" / "raccoon"
    cfg = spec(train=[(root / "images", root / "annotations" / "train.json")], num_classes=2)
    dataset = build_dataset(cfg, "train", log=None)
    assert dataset.report.summary() == "train: 160 images, 175 boxes"
    assert dataset.category_map.names == ["raccoon"]
