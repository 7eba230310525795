"""Bad data is found at load time: counted skips or one-line errors naming file and entry."""
from __future__ import annotations

import json

import pytest
import torch

from trainers.errors import UserError
from trainers.rtdetr.data import build_dataset
from trainers.rtdetr.data.categories import CategoryMap
from trainers.rtdetr.data.coco import CocoSource, load_split

from .helpers import simple_split, spec, write_coco, write_image


def load(tmp_path, images, annotations, categories=None, cmap=None):
    json_file = write_coco(tmp_path / "ann.json", images, annotations, categories)
    cmap = cmap or CategoryMap([c["id"] for c in categories or [{"id": 1}]],
                               [c.get("name", "x") for c in categories or [{"id": 1}]])
    return load_split("train", [CocoSource(str(json_file), str(tmp_path / "images"))], cmap)


def test_bad_boxes_are_skipped_clipped_and_counted(tmp_path):
    write_image(tmp_path / "images" / "a.png", size=(100, 50))
    images = [{"id": 1, "file_name": "a.png", "width": 100, "height": 50}]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},      # fine
        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 20]},       # zero width
        {"id": 9, "image_id": 1, "category_id": 1, "bbox": [10, 10, 5, -3]},       # negative height
        {"id": 12, "image_id": 1, "category_id": 1, "bbox": [200, 10, 5, 5]},      # outside the image
        {"id": 13, "image_id": 1, "category_id": 1, "bbox": [90, 40, 30, 30]},     # partly outside: clipped
        {"id": 14, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]},            # malformed
        {"id": 15, "image_id": 1, "category_id": 1, "bbox": [1, 2, float("nan"), 3]},
        {"id": 16, "image_id": 77, "category_id": 1, "bbox": [1, 2, 3, 4]},        # unknown image
        {"id": 17, "image_id": 1, "category_id": 4, "bbox": [1, 2, 3, 4]},         # unknown category
        {"id": 18, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "iscrowd": 1},
    ]
    table, _, report = load(tmp_path, images, annotations)
    boxes, labels = table.boxes_of(0)
    assert boxes.tolist() == [[10, 10, 30, 30], [90, 40, 100, 50]] and labels.tolist() == [0, 0]
    assert report.skipped_count("with zero or negative size") == 2
    assert report.skipped_count("outside the image") == 1
    assert report.skipped_count("with a malformed bbox (need 4 finite numbers)") == 2
    assert report.skipped_count("for unknown image ids") == 1
    assert report.skipped_count("with a category id not in the class map") == 1
    assert report.noted_count("clipped to the image") == 1
    summary = report.summary()
    assert summary.startswith("train: 1 image, 2 boxes; skipped 2 boxes with zero or negative size (ann ids 5, 9)")
    assert "1 annotation for unknown image ids (ann ids 16)" in summary


def test_missing_and_corrupt_images_are_skipped_and_named(tmp_path):
    write_image(tmp_path / "images" / "good.png")
    (tmp_path / "images" / "zero.jpg").write_bytes(b"")
    write_image(tmp_path / "images" / "whole.jpg", size=(64, 64), fmt="JPEG")
    data = (tmp_path / "images" / "whole.jpg").read_bytes()
    (tmp_path / "images" / "cut.jpg").write_bytes(data[: len(data) // 2])
    images = [{"id": i, "file_name": name} for i, name in
              enumerate(["good.png", "zero.jpg", "cut.jpg", "raccoon-17.jpg"], start=1)]
    table, _, report = load(tmp_path, images, [{"image_id": 4, "category_id": 1, "bbox": [1, 1, 4, 4]}])
    assert table.file_names.tolist() == ["good.png"]
    assert report.skipped_count("missing") == 1 and report.skipped_count("unreadable") == 2
    assert "1 image missing (raccoon-17.jpg)" in report.summary()
    assert "2 images unreadable (zero.jpg, cut.jpg)" in report.summary()
    assert "(1 without boxes)" in report.summary()


def test_an_empty_split_is_a_user_error_naming_the_file(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(UserError, match=r"train: no usable images in .*ann.json"):
        load(tmp_path, [{"id": 1, "file_name": "gone.png"}], [])


def test_unreadable_json_and_duplicate_image_ids_are_user_errors(tmp_path):
    (tmp_path / "broken.json").write_text("{\"images\": [")
    with pytest.raises(UserError, match=r"broken.json: not valid JSON \(line 1"):
        load_split("train", [CocoSource(str(tmp_path / "broken.json"), str(tmp_path))], CategoryMap([1], ["x"]))
    write_image(tmp_path / "images" / "a.png")
    with pytest.raises(UserError, match="image id 3 appears twice"):
        load(tmp_path, [{"id": 3, "file_name": "a.png"}, {"id": 3, "file_name": "b.png"}], [])


def test_sparse_category_ids_reach_the_model_as_contiguous_labels(tmp_path):
    json_file = simple_split(tmp_path, count=3, category_ids=(305, 201))
    cfg = spec(train=[(tmp_path / "images", json_file)], num_classes=2)
    dataset = build_dataset(cfg, "train", log=None)
    assert dataset.category_map.category_ids == [201, 305]
    labels = torch.cat([dataset[i][1]["labels"] for i in range(len(dataset))])
    assert set(labels.tolist()) <= {0, 1}


def test_num_classes_too_small_for_the_data_is_a_user_error(tmp_path):
    json_file = simple_split(tmp_path, count=1, category_ids=(201, 305, 307))
    cfg = spec(train=[(tmp_path / "images", json_file)], num_classes=2)
    with pytest.raises(UserError, match="num_classes is 2 but the data has 3 categories"):
        build_dataset(cfg, "train", log=None)


def test_train_sources_are_concatenated_and_reported_once(tmp_path, capsys):
    first = simple_split(tmp_path / "a", count=2, boxes_per_image=1)
    second = simple_split(tmp_path / "b", count=3, boxes_per_image=1)
    cfg = spec(train=[(tmp_path / "a" / "images", first), (tmp_path / "b" / "images", second)], num_classes=2)
    dataset = build_dataset(cfg, "train")
    assert len(dataset) == 5
    assert "train: 5 images, 5 boxes" in capsys.readouterr().out


def test_val_item_follows_the_contract(tmp_path):
    json_file = simple_split(tmp_path, count=1, size=(64, 48), boxes_per_image=1)
    cfg = spec(train=[(tmp_path / "images", json_file)], val=(tmp_path / "images", json_file),
               augmentation={"eval_spatial_size": [32, 64]})
    image, target = build_dataset(cfg, "val", log=None)[0]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 64) and 0 <= image.min() <= image.max() <= 1
    assert target["image_id"] == 100 and isinstance(target["image_id"], int)
    assert target["orig_size"].tolist() == [64, 48] and target["orig_size"].dtype == torch.int64
    assert target["size"].tolist() == [64, 32] and target["size"].dtype == torch.int64
    assert target["labels"].dtype == torch.int64 and target["boxes"].dtype == torch.float32
    # bbox [4, 3, 32, 24] in a 64x48 image -> cx = 20/64, cy = 15/48, w = 0.5, h = 0.5
    assert torch.allclose(target["boxes"], torch.tensor([[20 / 64, 15 / 48, 0.5, 0.5]]), atol=1e-6)


def test_pixels_are_only_divided_by_255(tmp_path):
    from PIL import Image
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8), (255, 51, 0)).save(tmp_path / "images" / "flat.png")
    json_file = write_coco(tmp_path / "a.json", [{"id": 1, "file_name": "flat.png"}], [])
    cfg = spec(train=[(tmp_path / "images", json_file)], val=(tmp_path / "images", json_file),
               augmentation={"eval_spatial_size": [32, 32]})
    image, _ = build_dataset(cfg, "val", log=None)[0]
    assert torch.allclose(image[:, 0, 0], torch.tensor([1.0, 0.2, 0.0]))


def test_json_sizes_that_disagree_with_the_file_are_noted(tmp_path):
    write_image(tmp_path / "images" / "a.png", size=(64, 48))
    _, _, report = load(tmp_path, [{"id": 1, "file_name": "a.png", "width": 640, "height": 480}], [])
    assert report.noted_count("with a width/height different from the json (the file's size is used)") == 1
    assert json.loads((tmp_path / "ann.json").read_text())["images"][0]["width"] == 640


def test_hdf5_frames_and_a_tar_archive_work_as_image_dirs(tmp_path, monkeypatch):
    import tarfile

    import h5py
    import numpy as np

    monkeypatch.setenv("TAO_AUTOML_CACHE", str(tmp_path / "cache"))
    frames = tmp_path / "frames"
    frames.mkdir()
    with h5py.File(frames / "seq_7.h5", "w") as f:
        f["rgb/0001"] = np.zeros((40, 60, 3), np.uint8)
    h5_json = write_coco(tmp_path / "h5.json", [{"id": 1, "file_name": "h5://seq_7:0001", "width": 60, "height": 40}],
                         [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 10]}], [{"id": 1, "name": "class1"}])
    json_file = simple_split(tmp_path / "plain", count=2)
    with tarfile.open(tmp_path / "images.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "plain" / "images", arcname="images")
    cfg = spec(train=[(frames, h5_json), (tmp_path / "images.tar.gz", json_file)], num_classes=2)
    dataset = build_dataset(cfg, "train", log=None)
    assert len(dataset) == 3 and dataset.report.boxes == 5
    assert dataset.file_name(0) == "h5://seq_7:0001" and dataset.raw_target(0)["orig_size"].tolist() == [60, 40]
    image, target = dataset[0]
    assert image.shape == (3, 640, 640) and len(target["boxes"]) <= 1


def test_a_file_that_breaks_after_the_header_check_is_replaced_with_a_warning(tmp_path, capsys):
    # Splits above FULL_DECODE_LIMIT images are checked by header only; a truncated
    # JPEG then fails when decoded, and the item falls through to the next image.
    from trainers.rtdetr.data.dataset import CocoDetectionDataset
    from trainers.rtdetr.data.transforms import eval_transforms

    write_image(tmp_path / "images" / "whole.jpg", size=(64, 64), fmt="JPEG")
    data = (tmp_path / "images" / "whole.jpg").read_bytes()
    (tmp_path / "images" / "cut.jpg").write_bytes(data[: len(data) // 2])
    json_file = write_coco(tmp_path / "ann.json", [{"id": 1, "file_name": "cut.jpg"}, {"id": 2, "file_name": "whole.jpg"}],
                           [])
    table, readers, report = load_split("train", [CocoSource(str(json_file), str(tmp_path / "images"))],
                                        CategoryMap([1], ["x"]), full_decode=False)
    assert report.images == 2
    dataset = CocoDetectionDataset(table, readers, eval_transforms([32, 32]))
    assert dataset[0][1]["image_id"] == 2
    assert "warning: skipping" in capsys.readouterr().err and "cut.jpg" in dataset.file_name(0)
