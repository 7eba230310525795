"""Run a model over a loader and score it with COCO metrics; the ``evaluate`` action.

- :func:`predict_coco`: detections (COCO result records, dataset category
  ids) for every image of a loader, gathered from all processes;
- :func:`evaluate_model`: those detections scored by :mod:`.coco_eval`;
- :func:`predict_coco_runtime`: the same detections from a runtime predictor
  (an exported ``.onnx`` or ``.engine``, see trainers/rtdetr/runtime);
- :func:`evaluate_checkpoint`: ``tao-automl evaluate`` for a ``.pth``,
  ``.onnx`` or ``.engine``: the model on ``dataset.test_data_sources``,
  ``results.json`` in ``<results_dir>/evaluate/`` and a table on stdout.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from trainers.errors import UserError

from . import distributed
from .coco_eval import coco_metrics, detections_to_coco, format_metrics_table
from .precision import autocast, check_precision, select_device, to_float32
from .run_files import write_json_atomic


@torch.no_grad()
def predict_coco(model: nn.Module, postprocessor: nn.Module, loader, device: torch.device, precision: str,
                 category_ids: Sequence[int], conf_threshold: float = 0.0) -> Tuple[List[Dict[str, Any]], List[int]]:
    """Detections and the ids of the images seen, over all processes (each image once).

    Boxes are mapped to original-image pixels with ``target["norm_size"]``
    (the span of normalised coordinate 1.0; ``orig_size`` when absent).
    """
    was_training = model.training
    model.eval()
    per_image: Dict[int, List[Dict[str, Any]]] = {}
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        with autocast(precision, device):
            outputs = model(images)
        outputs = to_float32(outputs)
        sizes = torch.stack([torch.as_tensor(t.get("norm_size", t["orig_size"])) for t in targets]).to(device)
        results = postprocessor(outputs, sizes)
        image_ids = [int(t["image_id"]) for t in targets]
        for image_id, result in zip(image_ids, results):
            keep = result["scores"] >= conf_threshold
            per_image[image_id] = detections_to_coco([{k: v[keep] for k, v in result.items()}], [image_id],
                                                     category_ids)
    model.train(was_training)
    # A DistributedSampler repeats a few images to even out the ranks; the dict keeps each once.
    merged: Dict[int, List[Dict[str, Any]]] = {}
    for part in distributed.all_gather_objects(per_image):
        merged.update(part)
    detections = [record for image_id in sorted(merged) for record in merged[image_id]]
    return detections, sorted(merged)


def evaluate_model(model: nn.Module, postprocessor: nn.Module, loader, ground_truth: Any, category_ids: Sequence[int],
                   device: torch.device, precision: str, conf_threshold: float = 0.0) -> Dict[str, Any]:
    """COCO metrics of ``model`` on ``loader`` (computed on rank 0, shared with every rank)."""
    detections, image_ids = predict_coco(model, postprocessor, loader, device, precision, category_ids,
                                         conf_threshold)
    metrics = coco_metrics(ground_truth, detections, image_ids=image_ids) if distributed.is_main_process() else None
    return distributed.broadcast_object(metrics)


def predict_coco_runtime(predictor, loader, category_ids: Sequence[int], conf_threshold: float = 0.0
                         ) -> Tuple[List[Dict[str, Any]], List[int]]:
    """Detections (COCO records, dataset ids, original-image pixels) and image ids, from a runtime predictor.

    The loader's images must have the predictor's input size; boxes come back
    in input pixels and are mapped with ``target["norm_size"]`` as in
    :func:`predict_coco`.
    """
    from trainers.rtdetr.runtime import predict_any_batch, scale_boxes

    per_image: Dict[int, List[Dict[str, Any]]] = {}
    for images, targets in loader:
        labels, boxes, scores = predict_any_batch(predictor, images.numpy())
        sizes = torch.stack([torch.as_tensor(t.get("norm_size", t["orig_size"])) for t in targets]).numpy()
        boxes = scale_boxes(boxes, tuple(images.shape[-2:]), sizes)
        for index, target in enumerate(targets):
            image_id = int(target["image_id"])
            keep = scores[index] >= conf_threshold
            result = {"scores": torch.from_numpy(scores[index][keep]), "labels": torch.from_numpy(labels[index][keep]),
                      "boxes": torch.from_numpy(boxes[index][keep])}
            per_image[image_id] = detections_to_coco([result], [image_id], category_ids)
    detections = [record for image_id in sorted(per_image) for record in per_image[image_id]]
    return detections, sorted(per_image)


def evaluate_checkpoint(cfg, checkpoint: Optional[str] = None, log=print) -> Dict[str, Any]:
    """``tao-automl evaluate`` for a PyTorch checkpoint, an ONNX file or a TensorRT engine (by suffix;
    ``evaluate.trt_engine``, when set, is evaluated instead of ``evaluate.checkpoint``); returns the
    metrics written to results.json."""
    from trainers.rtdetr.runtime import PYTORCH_SUFFIXES, is_exported

    evaluate_cfg = cfg.evaluate
    checkpoint = str(checkpoint or getattr(evaluate_cfg, "trt_engine", "") or evaluate_cfg.checkpoint or "")
    if not checkpoint or checkpoint == "???":
        raise UserError("evaluate.checkpoint: no checkpoint given")
    if is_exported(checkpoint):
        return _evaluate_exported(cfg, checkpoint, log)
    if not checkpoint.endswith(PYTORCH_SUFFIXES):
        raise UserError(f"evaluate.checkpoint: {checkpoint}: unknown model file type; expected a PyTorch "
                        f"checkpoint (.pth), an ONNX file (.onnx) or a TensorRT engine (.engine)")
    return _evaluate_pytorch(cfg, checkpoint, log)


def _evaluate_pytorch(cfg, checkpoint: str, log) -> Dict[str, Any]:
    from trainers.rtdetr.checkpoint import load_checkpoint, model_state_from
    from trainers.rtdetr.data import build_category_map, build_dataloader
    from trainers.rtdetr.data.build import coco_sources
    from trainers.rtdetr.data.categories import CategoryMap
    from trainers.rtdetr.model import PostProcessor, build_model

    evaluate_cfg = cfg.evaluate
    payload = load_checkpoint(checkpoint)
    if payload.get("category_ids"):
        category_map = CategoryMap(payload["category_ids"], payload.get("class_names") or
                                   [str(c) for c in payload["category_ids"]])
    else:
        category_map = build_category_map(cfg, log=log)
    num_classes = int(payload.get("num_classes") or len(category_map))

    device = select_device(int(evaluate_cfg.num_gpus))
    precision = check_precision("fp32", device)
    state = model_state_from(payload, checkpoint)
    model = build_model(cfg.model, num_classes)
    problem = _load_into(model, state)
    if problem and isinstance(payload.get("model_config"), dict):
        # The weights decide the architecture: rebuild from the settings saved with them.
        saved = SimpleNamespace(**{**dataclasses.asdict(cfg.model), **payload["model_config"]})
        rebuilt = build_model(saved, num_classes)
        if not _load_into(rebuilt, state):
            model, problem = rebuilt, ""
            if log is not None:
                log(f"{checkpoint}: model.* of the spec does not fit these weights; using the settings saved "
                    f"in the checkpoint")
    if problem:
        raise UserError(f"evaluate.checkpoint: {checkpoint} does not fit model.* of the spec ({problem})")
    model.to(device)
    postprocessor = PostProcessor(num_select=cfg.model.num_select)

    loader = build_dataloader(cfg, "test", category_map=category_map, log=log)
    if int(getattr(evaluate_cfg, "batch_size", -1)) > 0:
        loader = torch.utils.data.DataLoader(loader.dataset, batch_size=int(evaluate_cfg.batch_size),
                                             num_workers=loader.num_workers, collate_fn=loader.collate_fn)
    ground_truth = coco_sources(cfg, "test")[0].json_file
    metrics = evaluate_model(model, postprocessor, loader, ground_truth, category_map.category_ids, device,
                             precision, conf_threshold=float(getattr(evaluate_cfg, "conf_threshold", 0.0)))
    return _write_results(cfg, checkpoint, metrics, log)


def _evaluate_exported(cfg, checkpoint: str, log) -> Dict[str, Any]:
    """An .onnx / .engine: classes and input size come from the file; the test images are resized to it."""
    import copy

    from trainers.rtdetr.data import build_dataloader
    from trainers.rtdetr.data.build import coco_sources
    from trainers.rtdetr.data.categories import CategoryMap
    from trainers.rtdetr.runtime import load_predictor

    evaluate_cfg = cfg.evaluate
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with load_predictor(checkpoint, device=device) as predictor:
        info = predictor.info
        category_map = CategoryMap(info.category_ids, info.class_names)
        if info.input_size:
            cfg = copy.deepcopy(cfg)
            cfg.dataset.augmentation.eval_spatial_size = [int(v) for v in info.input_size]
        loader = build_dataloader(cfg, "test", category_map=category_map, log=log)
        if int(getattr(evaluate_cfg, "batch_size", -1)) > 0:
            loader = torch.utils.data.DataLoader(loader.dataset, batch_size=int(evaluate_cfg.batch_size),
                                                 num_workers=loader.num_workers, collate_fn=loader.collate_fn)
        detections, image_ids = predict_coco_runtime(predictor, loader, category_map.category_ids,
                                                     float(getattr(evaluate_cfg, "conf_threshold", 0.0)))
    metrics = coco_metrics(coco_sources(cfg, "test")[0].json_file, detections, image_ids=image_ids)
    if log is not None and info.input_size:
        log(f"{checkpoint}: {predictor.runtime}, input {info.input_size[0]}x{info.input_size[1]}")
    return _write_results(cfg, checkpoint, metrics, log)


def _write_results(cfg, checkpoint: str, metrics: Dict[str, Any], log) -> Dict[str, Any]:
    evaluate_cfg = cfg.evaluate
    metrics = {"checkpoint": checkpoint, **{k.replace("val_", "test_"): v for k, v in metrics.items()}}
    out_dir = Path(evaluate_cfg.results_dir) if evaluate_cfg.results_dir else Path(cfg.results_dir or ".") / "evaluate"
    write_json_atomic(out_dir / "results.json", metrics)
    if log is not None:
        log(format_metrics_table(metrics))
        log(f"results: {out_dir / 'results.json'}")
    return metrics


def _load_into(model: nn.Module, state: Dict[str, torch.Tensor]) -> str:
    """Load ``state`` strictly; return what did not fit ("" when everything did)."""
    try:
        incompatible = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        return str(error).strip().splitlines()[-1].strip()
    if incompatible.missing_keys:
        return f"missing {len(incompatible.missing_keys)} weights, e.g. {incompatible.missing_keys[0]}"
    return ""
