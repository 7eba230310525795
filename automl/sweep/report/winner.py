"""The winner on its validation set: precision-recall curves, a confusion matrix and annotated images.

The winner's checkpoint (``best/model_best.pth``) runs once over the
validation split of ``best_spec.yaml`` (the data pipeline of evaluation, so
the boxes are those its val_mAP50 was computed from), then:

- precision-recall at IoU 0.5, per class and over all classes, from
  pycocotools' ``eval["precision"]`` ([T IoUs, R recall points, K classes,
  A areas, M max-detections]; T index 0 is IoU 0.5, area "all", 100 detections);
- a confusion matrix of the detections scored at least the spec's
  ``inference.conf_threshold`` (see :mod:`.confusion`);
- the first few validation images with ground truth (white) and those
  detections (class colours, "name score") drawn on them.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np

from .charts import Chart, plt, save_figure
from .confusion import ConfusionMatrix
from .sweep_folder import SweepFolder

SAMPLE_IMAGES = 4
LEGEND_CLASSES = 10        # precision-recall curves named one by one up to this many classes
MAX_DETECTIONS = 100       # per image, as trainers/rtdetr/engine/coco_eval.py
SAMPLE_SIDE = (320, 640)   # annotated samples are scaled so the longer side lies in this range (pixels)
IOU = 0.5


@dataclass
class WinnerFigures:
    charts: List[Chart] = field(default_factory=list)
    samples: List[Path] = field(default_factory=list)
    per_class: List[Dict[str, Any]] = field(default_factory=list)   # name, category_id, num_gt, AP50
    score_threshold: float = 0.5
    num_images: int = 0
    note: str = ""                                                   # why there is nothing, when there is nothing


def analyse_winner(folder: SweepFolder, skill: str, out_dir: Path, log: Callable[[str], None] = print) -> WinnerFigures:
    if not folder.best_checkpoint.is_file() or not folder.best_spec.is_file():
        return WinnerFigures(note=f"no winner to analyse ({folder.best_checkpoint} or {folder.best_spec} is missing)")
    import torch

    from automl.spec import load_spec
    from trainers.rtdetr.checkpoint import load_checkpoint
    from trainers.rtdetr.data import CategoryMap, build_dataloader
    from trainers.rtdetr.data.build import coco_sources
    from trainers.rtdetr.engine.coco_eval import load_coco_ground_truth
    from trainers.rtdetr.engine.evaluation import predict_coco
    from trainers.rtdetr.load import model_from_checkpoint
    from trainers.rtdetr.model import PostProcessor

    cfg = load_spec(skill, folder.best_spec, [], "train")
    payload = load_checkpoint(folder.best_checkpoint, map_location="cpu")
    category_map = CategoryMap(payload["category_ids"], payload.get("class_names") or
                               [str(c) for c in payload["category_ids"]])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model_from_checkpoint(payload, folder.best_checkpoint).to(device).eval()
    loader = build_dataloader(cfg, "val", category_map=category_map, log=None)
    detections, image_ids = predict_coco(model, PostProcessor(num_select=int(cfg.model.num_select)), loader, device,
                                         "fp32", category_map.category_ids)
    ground_truth = load_coco_ground_truth(coco_sources(cfg, "val")[0].json_file)
    threshold = float(getattr(cfg.inference, "conf_threshold", 0.5))
    figures = WinnerFigures(score_threshold=threshold, num_images=len(image_ids))

    pr_chart, figures.per_class = _precision_recall(ground_truth, detections, image_ids, category_map, out_dir)
    figures.charts.append(pr_chart)
    dataset = loader.dataset
    by_image = _detections_by_image(detections, category_map)
    figures.charts.append(_confusion(dataset, by_image, category_map, threshold, out_dir))
    figures.samples = _samples(dataset, by_image, category_map, threshold, out_dir)
    return figures


def _detections_by_image(detections, category_map) -> Dict[int, Dict[str, np.ndarray]]:
    """COCO records (xywh, dataset ids) -> per image boxes [K, 4] xyxy, contiguous labels [K], scores [K]."""
    grouped: Dict[int, List[Dict[str, Any]]] = {}
    for record in detections:
        grouped.setdefault(int(record["image_id"]), []).append(record)
    result = {}
    for image_id, records in grouped.items():
        boxes = np.array([r["bbox"] for r in records], dtype=float).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        labels = np.array([category_map.label_of(r["category_id"]) for r in records], dtype=int)
        result[image_id] = {"boxes": boxes, "labels": labels,
                            "scores": np.array([r["score"] for r in records], dtype=float)}
    return result


@plt.style.context("default")   # plain matplotlib, whatever style the process is in
def _precision_recall(ground_truth, detections, image_ids, category_map, out_dir: Path):
    from pycocotools.cocoeval import COCOeval

    title = "Precision-recall at IoU 0.5 (validation set)"
    per_class = [{"name": name, "category_id": cid, "AP50": None,
                  "num_gt": len(ground_truth.getAnnIds(imgIds=list(image_ids), catIds=[cid], iscrowd=False))}
                 for cid, name in zip(category_map.category_ids, category_map.names)]
    if not detections or not ground_truth.getAnnIds(imgIds=list(image_ids)):
        return Chart("precision_recall", title, note="the winner made no detection on the validation set"
                     if not detections else "the validation set has no boxes"), per_class
    with contextlib.redirect_stdout(io.StringIO()):   # pycocotools prints progress
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(_top_per_image(detections)), iouType="bbox")
        evaluator.params.imgIds = list(image_ids)
        evaluator.params.catIds = list(category_map.category_ids)
        evaluator.params.maxDets = [1, 10, 100]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, :, 0, -1]   # [R recall points, K classes] at IoU 0.5
    recall = evaluator.params.recThrs
    figure, axes = plt.subplots(figsize=(7, 4.5))
    legend_each = len(per_class) <= LEGEND_CLASSES   # beyond that, thin grey class curves without names
    for k, row in enumerate(per_class):
        curve = precision[:, k]
        if (curve > -1).any():
            row["AP50"] = float(curve[curve > -1].mean())
            style = dict(linewidth=1.2, label=f"{row['name']} (AP50 {row['AP50']:.3f})") if legend_each else \
                dict(linewidth=0.6, color="0.7")
            axes.plot(recall, np.clip(curve, 0, None), **style)
    defined = precision > -1
    if defined.any():
        mean = np.where(defined, precision, 0).sum(axis=1) / np.maximum(defined.sum(axis=1), 1)
        axes.plot(recall, mean, color="black", linewidth=2.4,
                  label=f"all classes (mAP50 {float(mean.mean()):.3f})")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    return Chart("precision_recall", title, path=save_figure(figure, out_dir / "precision_recall.png")), per_class


def _top_per_image(detections: List[Dict[str, Any]], limit: int = MAX_DETECTIONS) -> List[Dict[str, Any]]:
    """The ``limit`` best detections of each image across classes: the COCO rule val_mAP50 is computed with."""
    by_image: Dict[int, List[Dict[str, Any]]] = {}
    for record in detections:
        by_image.setdefault(int(record["image_id"]), []).append(record)
    return [r for records in by_image.values() for r in sorted(records, key=lambda r: -r["score"])[:limit]]


@plt.style.context("default")
def _confusion(dataset, by_image, category_map, threshold: float, out_dir: Path) -> Chart:
    title = "Confusion matrix"
    matrix = ConfusionMatrix(len(category_map), iou_threshold=IOU, score_threshold=threshold)
    for index in range(len(dataset)):
        target = dataset.raw_target(index)
        found = by_image.get(int(target["image_id"]), {"boxes": np.zeros((0, 4)), "labels": [], "scores": []})
        matrix.add_image(found["boxes"], found["labels"], found["scores"], target["boxes"].numpy(),
                         target["labels"].numpy())
    names = list(category_map.names) + ["background"]
    counts = matrix.matrix
    fractions = counts / np.maximum(counts.sum(axis=0, keepdims=True), 1)   # of each true class (column)
    side = min(14.0, max(4.5, 0.6 * len(names) + 2.5))   # 80 classes stay a readable, bounded image
    figure, axes = plt.subplots(figsize=(side + 1, side))
    image = axes.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = dict(fontsize=8 if len(names) <= 20 else 5)
    axes.set_xticks(range(len(names)), names, rotation=45 if len(names) <= 20 else 90, ha="right", **ticks)
    axes.set_yticks(range(len(names)), names, **ticks)
    axes.set(xlabel="true", ylabel="predicted",
             title=f"{title}\n(IoU >= {IOU:g}, score >= {threshold:g}; counts)")
    if len(names) <= 20:
        for (row, column), count in np.ndenumerate(counts):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=8,
                      color="white" if fractions[row, column] > 0.6 else "black")
    return Chart("confusion", title, path=save_figure(figure, out_dir / "confusion_matrix.png"))


def _samples(dataset, by_image, category_map, threshold: float, out_dir: Path) -> List[Path]:
    from PIL import ImageDraw

    from trainers.rtdetr.annotate import ClassColors, Detection, draw_detections, save_image_atomic

    colors = ClassColors({})
    paths = []
    for index in range(min(SAMPLE_IMAGES, len(dataset))):
        target = dataset.raw_target(index)
        reader = dataset.readers[int(dataset.table.source_index[index])]
        image = reader.read(dataset.file_name(index))
        longest = max(image.size)
        scale = min(max(1.0, SAMPLE_SIDE[0] / longest), SAMPLE_SIDE[1] / longest) if longest else 1.0
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        draw = ImageDraw.Draw(image)
        for box in target["boxes"].numpy() * scale:   # ground truth: white, with a dark edge to show on any colour
            draw.rectangle(tuple(box), outline=(0, 0, 0), width=4)
            draw.rectangle(tuple(box), outline=(255, 255, 255), width=2)
        found = by_image.get(int(target["image_id"]))
        shown = []
        if found is not None:
            for box, label, score in zip(found["boxes"], found["labels"], found["scores"]):
                if score >= threshold:
                    shown.append(Detection(tuple(float(v) for v in box * scale), float(score), int(label),
                                           category_map.name_of(int(label))))
        draw_detections(image, shown, colors, outline_width=2)
        paths.append(save_image_atomic(image, out_dir / f"sample_{index + 1}.png"))
    return paths
