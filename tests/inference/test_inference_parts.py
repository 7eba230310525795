"""The pieces of inference that need no model run: naming, categories, colours, KITTI lines, detections."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from trainers.errors import UserError
from trainers.rtdetr.annotate import DEFAULT_PALETTE, ClassColors, Detection, draw_detections, kitti_lines
from trainers.rtdetr.data.categories import CategoryMap
from trainers.rtdetr.data.transforms import eval_transforms
from trainers.rtdetr.inference import inference_category_map, kept_detections
from trainers.rtdetr.inference_images import InferenceImages


def _spec(classmap: str = "", remap_mscoco_category: bool = False) -> SimpleNamespace:
    return SimpleNamespace(dataset=SimpleNamespace(infer_data_sources=SimpleNamespace(classmap=classmap),
                                                   remap_mscoco_category=remap_mscoco_category))


def test_categories_come_from_the_checkpoint_then_the_classmap_then_coco_then_the_index(tmp_path):
    label_map = tmp_path / "label_map.txt"
    label_map.write_text("car\nbus\n")
    from_checkpoint = inference_category_map({"category_ids": [5, 9], "class_names": ["a", "b"]},
                                             _spec(str(label_map)), 2)
    assert (from_checkpoint.category_ids, from_checkpoint.names) == ([5, 9], ["a", "b"])
    from_classmap = inference_category_map({}, _spec(str(label_map)), 3)
    assert (from_classmap.category_ids, from_classmap.names) == ([1, 2], ["car", "bus"])
    coco = inference_category_map({}, _spec(remap_mscoco_category=True), 80)
    assert (coco.category_ids[-1], coco.names[-1]) == (90, "toothbrush")
    by_index = inference_category_map({}, _spec(), 2)
    assert (by_index.category_ids, by_index.names) == ([0, 1], ["0", "1"])
    with pytest.raises(UserError, match="name 2 classes but the model predicts 1"):
        inference_category_map({}, _spec(str(label_map)), 1)


def test_kept_detections_filter_by_score_drop_spare_labels_and_clip_to_the_image():
    result = {"scores": torch.tensor([0.9, 0.2, 0.8, 0.95]), "labels": torch.tensor([0, 1, 2, 1]),
              "boxes": torch.tensor([[-5.0, 2, 30, 50], [0, 0, 1, 1], [0, 0, 1, 1], [10, 10, 20, 20]])}
    detections = kept_detections(result, torch.tensor([25, 40]), CategoryMap([3, 7], ["cat", "dog"]), 0.5)
    # label 2 is a spare "+1" output (no category); 0.2 is below the threshold; best first.
    assert [(d.name, d.score) for d in detections] == [("dog", pytest.approx(0.95)), ("cat", pytest.approx(0.9))]
    assert detections[1].box == (0.0, 2.0, 25.0, 40.0)


def test_colour_map_names_win_other_classes_take_the_palette_and_typos_are_reported():
    colors = ClassColors({"cat": "red", "horse": "#0000ff"})
    assert colors.of(0, "cat") == (255, 0, 0)
    assert colors.of(1, "dog") == DEFAULT_PALETTE[1]
    assert colors.unknown_names(["cat", "dog"]) == ["horse"]
    with pytest.raises(UserError, match="inference.color_map.dog: 'nope' is not a colour"):
        ClassColors({"dog": "nope"})


def test_outline_width_sets_the_drawn_line_width():
    image = Image.new("RGB", (60, 60), (0, 0, 0))
    detection = Detection(box=(10.0, 30.0, 50.0, 50.0), score=0.5, label=0, name="cat")
    draw_detections(image, [detection], ClassColors({"cat": "#ff0000"}), outline_width=3)
    row = [image.getpixel((x, 40)) for x in range(8, 16)]
    assert row == [(0, 0, 0)] * 2 + [(255, 0, 0)] * 3 + [(0, 0, 0)] * 3


def test_kitti_lines_follow_tao_and_keep_names_in_one_field():
    line = kitti_lines([Detection(box=(1.0, 2.0, 3.5, 4.25), score=0.87654, label=0, name="traffic light")])[0]
    assert line == "traffic_light 0.00 0 0.00 1.00 2.00 3.50 4.25 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.8765"


def test_same_names_in_two_sources_get_distinct_outputs_and_is_internal_uses_source_folders(tmp_path):
    for folder in ("day", "night"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (32, 32)).save(tmp_path / folder / "x.png")
    (tmp_path / "day" / "x_2.png").write_bytes((tmp_path / "day" / "x.png").read_bytes())
    (tmp_path / "day" / "broken.png").write_bytes(b"not an image")
    dirs = [str(tmp_path / "day"), str(tmp_path / "night")]
    flat = InferenceImages(dirs, eval_transforms([32, 32]))
    assert [i.output_name for i in flat.images] == ["x.png", "x_2.png", "x_3.png"]
    assert "skipped 1 image unreadable" in flat.report.summary()
    internal = InferenceImages(dirs, eval_transforms([32, 32]), per_source_folders=True)
    assert [i.output_name for i in internal.images] == ["day/x.png", "day/x_2.png", "night/x.png"]
