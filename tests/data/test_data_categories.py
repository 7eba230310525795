"""Dataset category ids <-> contiguous labels, and back on every output."""
from __future__ import annotations

import pytest
import torch

from trainers.errors import UserError
from trainers.rtdetr.data.categories import CategoryMap
from trainers.rtdetr.data.coco import category_map_from_files
from trainers.rtdetr.data.report import LoadReport

from .helpers import write_coco


def test_sparse_ids_map_to_contiguous_labels_and_back():
    cmap = CategoryMap.from_coco_categories([("a.json", [{"id": 305, "name": "dog"}, {"id": 201, "name": "cat"}])])
    assert cmap.category_ids == [201, 305] and cmap.names == ["cat", "dog"]
    assert cmap.label_of(201) == 0 and cmap.label_of(305) == 1
    assert cmap.labels_to_category_ids(torch.tensor([[1, 0], [0, 1]])).tolist() == [[305, 201], [201, 305]]


def test_spare_head_outputs_map_to_minus_one():
    # NVIDIA's habit: num_classes = max id + 1; outputs beyond the categories have no dataset id.
    cmap = CategoryMap([1, 2], ["a", "b"])
    cmap.check_num_classes(3)
    assert cmap.labels_to_category_ids(torch.tensor([0, 1, 2])).tolist() == [1, 2, -1]


def test_num_classes_below_the_category_count_is_a_user_error():
    with pytest.raises(UserError, match="dataset.num_classes is 1 but the data has 2 categories"):
        CategoryMap([201, 305], ["cat", "dog"]).check_num_classes(1)


def test_train_sources_are_united_and_conflicting_names_refused(tmp_path):
    a = write_coco(tmp_path / "a.json", [], [], [{"id": 1, "name": "cat"}])
    b = write_coco(tmp_path / "b.json", [], [], [{"id": 7, "name": "dog"}, {"id": 1, "name": "cat"}])
    assert category_map_from_files([str(a), str(b)]).category_ids == [1, 7]
    c = write_coco(tmp_path / "c.json", [], [], [{"id": 1, "name": "horse"}])
    with pytest.raises(UserError, match="category id 1 is named 'horse'"):
        category_map_from_files([str(a), str(c)])


def test_ids_used_by_annotations_but_not_declared_are_added_and_noted(tmp_path):
    path = write_coco(tmp_path / "a.json", [{"id": 1, "file_name": "x.png"}],
                      [{"image_id": 1, "category_id": 9, "bbox": [0, 0, 2, 2]}], [{"id": 1, "name": "cat"}])
    report = LoadReport("train categories")
    cmap = category_map_from_files([str(path)], report)
    assert cmap.category_ids == [1, 9] and cmap.names[1] == "category 9"
    assert "not in 'categories'" in report.summary()


def test_mscoco_remap_covers_80_of_91_ids():
    cmap = CategoryMap.mscoco()
    assert len(cmap) == 80 and cmap.label_of(1) == 0 and cmap.label_of(90) == 79
    assert 12 not in cmap and cmap.name_of(cmap.label_of(13)) == "stop sign"


def test_label_map_txt_numbers_lines_from_one(tmp_path):
    (tmp_path / "label_map.txt").write_text("raccoon\n\nbadger\n")
    cmap = CategoryMap.from_label_map(str(tmp_path / "label_map.txt"))
    assert cmap.category_ids == [1, 2] and cmap.names == ["raccoon", "badger"]
    with pytest.raises(UserError, match="file not found"):
        CategoryMap.from_label_map(str(tmp_path / "missing.txt"))


def test_to_dict_round_trips_through_plain_data():
    cmap = CategoryMap([201, 305], ["cat", "dog"])
    assert CategoryMap.from_dict(cmap.to_dict()) == cmap
