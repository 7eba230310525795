"""``tao-automl inference`` end to end: a tiny real model over a folder, an .h5 file and a tar.gz."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import numpy as np
import pytest
from PIL import Image

from automl.cli import main

from .conftest import CATEGORY_IDS, CLASS_NAMES, COLORS, EXPECTED_OUTPUTS

RECORD_KEYS = {"image_id", "file_name", "category_id", "bbox", "score"}


def run_cli(inputs: SimpleNamespace, results: str, checkpoint: Path, *overrides: str) -> SimpleNamespace:
    """Exit code, stdout, stderr, and (when it ran) the output folder and parsed results.json."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["inference", "--skill", "rtdetr", "-e", str(inputs.spec),
                     f"inference.checkpoint={checkpoint}", f"results_dir={inputs.root / results}", *overrides])
    out_dir = inputs.root / results / "inference"
    records = json.loads((out_dir / "results.json").read_text()) if code == 0 else None
    return SimpleNamespace(code=code, stdout=out.getvalue(), stderr=err.getvalue(), out_dir=out_dir, records=records)


@pytest.fixture(scope="module")
def all_detections(inference_inputs) -> SimpleNamespace:
    """conf_threshold 0: every post-processed detection is kept."""
    run = run_cli(inference_inputs, "all", inference_inputs.imported)
    assert run.code == 0, run.stderr
    return run


def by_file(records: List[Dict]) -> Dict[str, List[Dict]]:
    grouped: Dict[str, List[Dict]] = {}
    for record in records:
        grouped.setdefault(record["file_name"], []).append(record)
    return grouped


def test_every_source_gets_an_annotated_image_of_its_own_size(all_detections):
    annotated = all_detections.out_dir / "images_annotated"
    written = sorted(p.relative_to(annotated).as_posix() for p in annotated.rglob("*") if p.is_file())
    assert written == sorted(EXPECTED_OUTPUTS)
    for name, size in EXPECTED_OUTPUTS.items():
        with Image.open(annotated / name) as image:
            assert image.size == size, name


def test_boxes_are_drawn_in_the_color_map_colour_of_their_class(all_detections):
    name_of = dict(zip(CATEGORY_IDS, CLASS_NAMES))
    output_of = {"a.png": "a.png", "sub/b.png": "sub/b.png", "h5://seq:0001": "seq_0001.png",
                 "h5://seq:0002": "seq_0002.png", "images/c.png": "images/c.png"}
    grouped = by_file(all_detections.records)
    assert set(grouped) == set(output_of)
    for file_name, records in grouped.items():
        pixels = np.asarray(Image.open(all_detections.out_dir / "images_annotated" / output_of[file_name]))
        for class_name in {name_of[r["category_id"]] for r in records}:
            drawn = np.all(pixels == np.array(COLORS[class_name], dtype=np.uint8), axis=-1).sum()
            assert drawn > 0, (file_name, class_name)


def test_results_json_holds_coco_records_with_the_dataset_category_ids(all_detections):
    records = all_detections.records
    assert records and all(set(r) == RECORD_KEYS for r in records)
    assert {r["category_id"] for r in records} <= set(CATEGORY_IDS)
    sizes = {"a.png": (80, 60), "sub/b.png": (50, 70), "h5://seq:0001": (30, 40), "h5://seq:0002": (30, 40),
             "images/c.png": (64, 64)}
    for record in records:
        x, y, w, h = record["bbox"]
        width, height = sizes[record["file_name"]]
        assert 0 <= x and 0 <= y and w >= 0 and h >= 0 and x + w <= width + 0.01 and y + h <= height + 0.01
        assert 0.0 <= record["score"] <= 1.0
    image_ids = {}
    for record in records:
        assert image_ids.setdefault(record["file_name"], record["image_id"]) == record["image_id"]
    assert len(set(image_ids.values())) == len(image_ids)


def test_label_files_have_one_kitti_line_per_detection(all_detections):
    grouped = by_file(all_detections.records)
    lines = (all_detections.out_dir / "labels" / "seq_0002.txt").read_text().splitlines()
    assert len(lines) == len(grouped["h5://seq:0002"])
    fields = lines[0].split()
    assert len(fields) == 16 and fields[0] in CLASS_NAMES
    assert float(fields[15]) == pytest.approx(max(r["score"] for r in grouped["h5://seq:0002"]), abs=1e-4)


def test_the_command_prints_a_summary_and_where_the_results_are(all_detections):
    assert f"inference: 5 images, {len(all_detections.records)} detections with score >= 0" in all_detections.stdout
    assert str(all_detections.out_dir / "results.json") in all_detections.stdout


def test_conf_threshold_filters_and_a_training_checkpoint_gives_the_same_detections(inference_inputs,
                                                                                     all_detections):
    """The trainer's checkpoints carry model_config instead of architecture; the detections must not change."""
    scores = sorted({r["score"] for r in all_detections.records})
    middle = len(scores) // 2
    threshold = (scores[middle - 1] + scores[middle]) / 2  # between two distinct scores: no ties at the edge
    run = run_cli(inference_inputs, "thresholded", inference_inputs.trained,
                  f"inference.conf_threshold={threshold}")
    assert run.code == 0, run.stderr
    assert run.records and all(r["score"] >= threshold for r in run.records)
    assert run.records == [r for r in all_detections.records if r["score"] >= threshold]
    # Images without a detection above the threshold are still written, with empty label files.
    assert len([p for p in (run.out_dir / "images_annotated").rglob("*") if p.is_file()]) == 5
    assert len(list((run.out_dir / "labels").rglob("*.txt"))) == 5


def test_weights_alone_take_the_spec_model_and_the_classmap(inference_inputs, all_detections):
    run = run_cli(inference_inputs, "bare", inference_inputs.bare,
                  f"dataset.infer_data_sources.classmap={inference_inputs.label_map}")
    assert run.code == 0, run.stderr
    # label_map.txt numbers its lines from 1, as TAO does.
    assert {r["category_id"] for r in run.records} <= {1, 2}
    assert [r["score"] for r in run.records] == [r["score"] for r in all_detections.records]
    label_lines = (run.out_dir / "labels" / "a.txt").read_text().split()
    assert label_lines[0] in CLASS_NAMES


@pytest.mark.parametrize("override, expected", [
    (None, "checkpoint file not found"),
    ("inference.color_map.cat=notacolour", "inference.color_map.cat: 'notacolour' is not a colour"),
    ("inference.trt_engine=model.engine", "inference.trt_engine:"),
    ("inference.input_width=100", "inference.input_width: 100 is not a multiple of 32"),
])
def test_bad_input_exits_2_with_one_line(inference_inputs, override, expected):
    checkpoint = inference_inputs.root / "missing.pth" if override is None else inference_inputs.imported
    run = run_cli(inference_inputs, "bad", checkpoint, *([override] if override else []))
    assert run.code == 2
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert expected in run.stderr
    assert not (run.out_dir / "results.json").exists()
