"""COCO metrics: perfect, empty and partial detections, classes without ground truth, the 100-per-image cap."""
import pytest
import torch

from trainers.errors import UserError
from trainers.rtdetr.engine.coco_eval import (coco_metrics, detections_to_coco, format_metrics_table,
                                              load_coco_ground_truth)


def ground_truth():
    images = [{"id": i, "width": 200, "height": 100, "file_name": f"{i}.jpg"} for i in (1, 2)]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 50, 40]},
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [100, 20, 60, 60]},
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [5, 5, 100, 80]},
    ]
    categories = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 9, "name": "bird"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def perfect_detections():
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
            for a in ground_truth()["annotations"]]


def test_perfect_detections_score_one_and_a_class_without_ground_truth_is_none():
    metrics = coco_metrics(ground_truth(), perfect_detections())
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    assert metrics["val_mAP"] == metrics["AP"] and metrics["val_mAP50"] == metrics["AP50"]
    assert metrics["val_mAP75"] == pytest.approx(1.0)
    assert metrics["APs"] is None                        # no small object in the ground truth
    per_class = {row["name"]: row for row in metrics["per_class"]}
    assert per_class["cat"]["AP50"] == pytest.approx(1.0) and per_class["cat"]["num_gt"] == 2
    assert per_class["bird"]["AP50"] is None and per_class["bird"]["num_gt"] == 0


def test_no_detections_gives_zeros_not_an_error():
    metrics = coco_metrics(ground_truth(), [])
    assert metrics["val_mAP"] == metrics["val_mAP50"] == metrics["val_mAP75"] == 0.0
    assert {row["name"]: row["AP50"] for row in metrics["per_class"]} == {"cat": 0.0, "dog": 0.0, "bird": None}


def test_missing_one_of_two_cats_halves_the_cat_ap50():
    detections = [d for d in perfect_detections() if d["image_id"] != 2]
    metrics = coco_metrics(ground_truth(), detections)
    per_class = {row["name"]: row["AP50"] for row in metrics["per_class"]}
    assert per_class["dog"] == pytest.approx(1.0)
    assert per_class["cat"] == pytest.approx(0.5, abs=0.01)


def test_at_most_100_detections_per_image_across_classes():
    # 100 high-scored wrong-class boxes push the right one out when the cap is per image.
    decoys = [{"image_id": 2, "category_id": 7, "bbox": [150, 0, 10, 10], "score": 0.99} for _ in range(100)]
    hit = {"image_id": 2, "category_id": 3, "bbox": [5, 5, 100, 80], "score": 0.5}
    metrics = coco_metrics(ground_truth(), decoys + [hit])
    assert metrics["num_detections"] == 100
    cat = next(row for row in metrics["per_class"] if row["name"] == "cat")
    assert cat["AP50"] == pytest.approx(0.0)


def test_detections_for_unknown_images_are_refused():
    with pytest.raises(UserError, match="image ids"):
        coco_metrics(ground_truth(), [{"image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1.0}])


def test_postprocessor_output_converts_to_coco_records_in_dataset_ids():
    results = [{"scores": torch.tensor([0.9, 0.4]), "labels": torch.tensor([1, 0]),
                "boxes": torch.tensor([[100.0, 20.0, 160.0, 80.0], [10.0, 10.0, 60.0, 50.0]])},
               {"scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}]
    results[0]["labels"] = torch.tensor([1, 0, 2])           # label 2: a spare output, no category
    results[0]["scores"] = torch.tensor([0.9, 0.4, 0.3])
    results[0]["boxes"] = torch.cat([results[0]["boxes"], torch.ones(1, 4)])
    records = detections_to_coco(results, image_ids=[1, 2], category_ids=[3, 7])
    assert records == [{"image_id": 1, "category_id": 7, "bbox": [100.0, 20.0, 60.0, 60.0], "score": pytest.approx(0.9)},
                       {"image_id": 1, "category_id": 3, "bbox": [10.0, 10.0, 50.0, 40.0], "score": pytest.approx(0.4)}]


def test_ground_truth_from_a_file_and_a_table(tmp_path, capsys):
    import json
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(ground_truth()))
    metrics = coco_metrics(str(path), perfect_detections())
    assert capsys.readouterr().out == ""                    # pycocotools is silenced
    table = format_metrics_table(metrics)
    assert "AP50    1.000" in table and "bird" in table and "n/a" in table
    assert load_coco_ground_truth(load_coco_ground_truth(str(path))).getImgIds() == [1, 2]


def test_evaluation_can_be_restricted_to_the_images_that_were_run():
    detections = [d for d in perfect_detections() if d["image_id"] == 1]
    metrics = coco_metrics(ground_truth(), detections, image_ids=[1])
    assert metrics["AP50"] == pytest.approx(1.0) and metrics["num_images"] == 1
    cat = next(row for row in metrics["per_class"] if row["name"] == "cat")
    assert cat["num_gt"] == 1
