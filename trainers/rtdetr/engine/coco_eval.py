"""COCO box metrics with pycocotools: AP, AP50, AP75, AP small/medium/large, per-class AP50.

Input detections are in the dataset's own category ids (what the COCO json
uses), boxes ``[x, y, w, h]`` in pixels of the original image, as COCO's
result format.  At most ``max_dets`` (100) detections per image are kept,
the highest scored across all classes, which is the COCO rule; COCOeval's own
``maxDets`` cap alone would allow 100 *per class*.

The result dict also carries ``val_mAP``, ``val_mAP50`` and ``val_mAP75``
(the keys the trainer logs and the sweep optimises, ``val_mAP50``).  Metrics
COCO cannot define (no ground truth of that size or class) are ``None``;
``val_*`` are then 0.0 so a sweep always gets a number.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from trainers.errors import UserError

SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
MAX_DETECTIONS = 100


@contextlib.contextmanager
def _quiet():
    """pycocotools prints progress on stdout; a training log does not want it."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def load_coco_ground_truth(source: Union[str, os.PathLike, Mapping[str, Any], COCO]) -> COCO:
    """A COCO object from a json path, a loaded json dict or a COCO object (returned as is)."""
    if isinstance(source, COCO):
        return source
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, encoding="utf-8") as handle:
                dataset = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"{source}: cannot read the COCO annotation file ({error})") from None
    else:
        dataset = copy.deepcopy(dict(source))
    for annotation in dataset.get("annotations", []):
        annotation.setdefault("iscrowd", 0)
        annotation.setdefault("area", float(annotation["bbox"][2] * annotation["bbox"][3]))
    dataset.setdefault("categories", [])
    coco = COCO()
    coco.dataset = dataset
    with _quiet():
        coco.createIndex()
    return coco


def detections_to_coco(results: Sequence[Mapping[str, torch.Tensor]], image_ids: Sequence[int],
                       category_ids: Sequence[int]) -> List[Dict[str, Any]]:
    """Post-processor output -> COCO result records.

    ``results[i]`` holds ``scores`` [K], ``labels`` [K] (contiguous 0..C-1) and
    ``boxes`` [K, 4] (x1, y1, x2, y2 in original-image pixels) for the image
    ``image_ids[i]``; ``category_ids[label]`` is the dataset's id of a label.
    Labels past the end of ``category_ids`` (spare outputs of a head sized
    with TAO's "+1" habit) name no category and are dropped.
    """
    lookup = torch.as_tensor(list(category_ids), dtype=torch.int64)
    records = []
    for result, image_id in zip(results, image_ids):
        labels = result["labels"].detach().cpu().long()
        known = labels < len(lookup)
        boxes = result["boxes"].detach().float().cpu()[known]
        if boxes.numel() == 0:
            continue
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
        categories = lookup[labels[known]].tolist()
        scores = result["scores"].detach().float().cpu()[known].tolist()
        for box, category, score in zip(xywh, categories, scores):
            records.append({"image_id": int(image_id), "category_id": int(category), "bbox": box,
                            "score": float(score)})
    return records


def _top_per_image(detections: Sequence[Mapping[str, Any]], limit: int) -> List[Dict[str, Any]]:
    by_image: Dict[int, List[Dict[str, Any]]] = defaultdict(list)
    for detection in detections:
        by_image[int(detection["image_id"])].append(dict(detection))
    kept = []
    for image_detections in by_image.values():
        image_detections.sort(key=lambda d: d["score"], reverse=True)
        kept.extend(image_detections[:limit])
    return kept


def _defined(value: float) -> Optional[float]:
    """COCOeval marks undefined metrics with -1."""
    return None if value < 0 else float(value)


def coco_metrics(ground_truth: Union[str, os.PathLike, Mapping[str, Any], COCO],
                 detections: Sequence[Mapping[str, Any]], max_dets: int = MAX_DETECTIONS,
                 image_ids: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """COCO box metrics of ``detections`` against ``ground_truth`` (see the module docstring for the keys).

    ``image_ids`` restricts the evaluation to the images that were run (the
    data pipeline may have skipped broken ones); default: every image.
    """
    coco_gt = load_coco_ground_truth(ground_truth)
    known_images = set(coco_gt.getImgIds())
    if image_ids is not None:
        unknown = set(int(i) for i in image_ids) - known_images
        if unknown:
            raise UserError(f"image ids that the ground truth does not have: {sorted(unknown)[:5]}")
        known_images = set(int(i) for i in image_ids)
    stray = {int(d["image_id"]) for d in detections} - known_images
    if stray:
        raise UserError(f"detections for image ids that the ground truth does not have: {sorted(stray)[:5]}")
    categories = sorted(coco_gt.getCatIds())
    names = {c["id"]: c.get("name", str(c["id"])) for c in coco_gt.loadCats(categories)}
    image_list = sorted(known_images)
    gt_counts = {c: len(coco_gt.getAnnIds(imgIds=image_list, catIds=[c], iscrowd=False)) for c in categories}
    detections = _top_per_image(detections, max_dets)

    summary: Dict[str, Optional[float]] = {key: (0.0 if key in ("AP", "AP50", "AP75") else None)
                                           for key in SUMMARY_KEYS}
    per_class_ap50: Dict[int, Optional[float]] = {c: (0.0 if gt_counts[c] else None) for c in categories}
    per_class_ap: Dict[int, Optional[float]] = dict(per_class_ap50)
    if detections and coco_gt.getAnnIds(imgIds=image_list):
        with _quiet():
            coco_dt = coco_gt.loadRes(detections)
            evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
            evaluator.params.maxDets = [1, 10, max_dets]
            evaluator.params.imgIds = image_list
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        summary = {key: _defined(value) for key, value in zip(SUMMARY_KEYS, evaluator.stats)}
        # precision: [T iou thresholds, R recall points, K categories, A area ranges, M maxDets]
        precision = evaluator.eval["precision"]
        for k, category in enumerate(evaluator.params.catIds):
            all_iou = precision[:, :, k, 0, -1]
            at_50 = precision[0, :, k, 0, -1]
            per_class_ap[category] = float(np.mean(all_iou[all_iou > -1])) if (all_iou > -1).any() else None
            per_class_ap50[category] = float(np.mean(at_50[at_50 > -1])) if (at_50 > -1).any() else None

    metrics: Dict[str, Any] = dict(summary)
    metrics["val_mAP"] = summary["AP"] or 0.0
    metrics["val_mAP50"] = summary["AP50"] or 0.0
    metrics["val_mAP75"] = summary["AP75"] or 0.0
    metrics["num_images"] = len(known_images)
    metrics["num_detections"] = len(detections)
    metrics["per_class"] = [{"category_id": c, "name": names[c], "num_gt": gt_counts[c],
                             "AP": per_class_ap[c], "AP50": per_class_ap50[c]} for c in categories]
    return metrics


def format_metrics_table(metrics: Mapping[str, Any]) -> str:
    """The metrics as a plain-text table (summary, then one row per class)."""
    def shown(value: Optional[float]) -> str:
        return "  n/a" if value is None else f"{value:.3f}"

    lines = ["metric  value"] + [f"{key:<6}  {shown(metrics.get(key))}" for key in SUMMARY_KEYS]
    per_class = metrics.get("per_class") or []
    if per_class:
        width = max(8, max(len(str(row["name"])) for row in per_class))
        lines += ["", f"{'class':<{width}}  {'id':>5}  {'gt':>6}  {'AP50':>6}  {'AP':>6}"]
        for row in per_class:
            lines.append(f"{str(row['name']):<{width}}  {row['category_id']:>5}  {row['num_gt']:>6}  "
                         f"{shown(row['AP50']):>6}  {shown(row['AP']):>6}")
    return "\n".join(lines)
