"""``tao-automl inference``: run a checkpoint over images and write what it sees.

:func:`run_inference` (cfg) reads every image of
``dataset.infer_data_sources.image_dir`` (folders, ``images.tar.gz``, HDF5
frames; see :mod:`.inference_images`), keeps the detections scored at least
``inference.conf_threshold`` and writes, under ``inference.results_dir``
(default ``<results_dir>/inference``):

- ``images_annotated/<name>``: the image with its boxes and ``"name score"``
  tags in the ``inference.color_map`` colour of each class;
- ``labels/<name>.txt``: one KITTI line a box (TAO's label files);
- ``results.json``: COCO results ``[{image_id, file_name, category_id,
  bbox [x, y, w, h], score}]`` with the dataset's category ids.

``inference.checkpoint`` (or ``inference.trt_engine`` when set) may be a
``.pth``, an exported ``.onnx`` (ONNX Runtime) or a ``.engine`` (TensorRT):
exported files run through :func:`trainers.rtdetr.runtime.load_predictor`
at the input size and with the classes stored in them, with the same outputs.

The model of a ``.pth`` comes from the checkpoint alone when it stores its
``architecture`` (import-weights); otherwise from its ``model_config``
(training checkpoints) or, failing that, the spec's ``model.*``.  Class names
and dataset ids come from the checkpoint's ``category_ids``/``class_names``,
else ``dataset.infer_data_sources.classmap``, else the class index.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from trainers.atomic_write import write_text_atomic
from trainers.errors import UserError

from .annotate import ClassColors, Detection, draw_detections, kitti_lines, save_image_atomic
from .checkpoint import load_checkpoint, model_state_from
from .data.build import SIZE_MULTIPLE
from .data.categories import CategoryMap
from .data.collate import BatchCollate
from .data.transforms import eval_transforms
from .inference_images import InferenceImages
from .load import model_from_checkpoint
from .model import RTDETR, PostProcessor, build_model
from .runtime import Predictor, is_exported, load_predictor, predict_any_batch, scale_boxes

Log = Optional[Callable[[str], None]]
# Per batch: the targets and, per image, {"scores" [K], "labels" [K], "boxes" [K,4] in original pixels}.
BatchResults = Iterator[Tuple[List[Dict[str, Any]], List[Dict[str, torch.Tensor]]]]
ANNOTATED_DIR = "images_annotated"
LABELS_DIR = "labels"
RESULTS_FILE = "results.json"
# Drawing and encoding run in threads beside the model; this many images may wait to be written.
MAX_PENDING_WRITES = 64


@dataclass
class InferenceModel:
    """A model ready to run (eval, fused, on its device) and what its outputs mean."""

    model: RTDETR
    category_map: CategoryMap  # label -> dataset category id and class name
    num_select: int  # top (query, class) pairs the post-processor keeps per image


@dataclass
class InferenceSummary:
    """What :func:`run_inference` did."""

    images: int
    detections: int
    per_class: Dict[str, int]  # class name -> kept detections, most frequent first
    output_dir: Path
    results_file: Path
    seconds: float

    def line(self, conf_threshold: float) -> str:
        classes = ", ".join(f"{name} {count}" for name, count in self.per_class.items())
        return (f"inference: {self.images} images, {self.detections} detections with score >= {conf_threshold:g}"
                + (f" ({classes})" if classes else "") + f" in {self.seconds:.1f}s")


def run_inference(cfg, checkpoint: Optional[str] = None, log: Log = print) -> InferenceSummary:
    """``tao-automl inference`` for a .pth, .onnx or .engine (``cfg``: a validated ExperimentConfig)."""
    started = time.perf_counter()
    settings = cfg.inference
    _check_supported(settings)
    checkpoint = str(checkpoint or settings.trt_engine or settings.checkpoint or "")
    if not checkpoint or checkpoint == "???":
        raise UserError("inference.checkpoint: no checkpoint given")
    if settings.trt_engine and checkpoint == str(settings.trt_engine) and not Path(checkpoint).is_file():
        raise UserError(f"inference.trt_engine: {checkpoint}: file not found")
    # Everything the spec can get wrong is checked before the model is loaded.
    colors = ClassColors(settings.color_map)
    dataset = _dataset(cfg)
    if log is not None:
        log(dataset.report.summary().replace(", 0 boxes", ""))
    device = _device(settings, log)
    predictor: Optional[Predictor] = None
    if is_exported(checkpoint):
        predictor = load_predictor(checkpoint, device=str(device))
        category_map = CategoryMap(predictor.info.category_ids, predictor.info.class_names)
        dataset = _dataset_for(cfg, dataset, predictor, log)
    else:
        loaded = load_inference_model(cfg, checkpoint, device)
        category_map = loaded.category_map
    unknown = colors.unknown_names(category_map.names)
    if unknown and log is not None:
        log(f"warning: inference.color_map names classes the model does not have: {', '.join(unknown)} "
            f"(classes: {', '.join(category_map.names)})")
    conf_threshold = float(settings.conf_threshold)
    loader = _loader(cfg, dataset)
    out_dir = Path(settings.results_dir) if settings.results_dir else Path(cfg.results_dir or ".") / "inference"
    batches = _predictor_results(loader, predictor) if predictor else _model_results(loader, loaded, device)

    records: List[Dict[str, Any]] = []
    per_class: Counter = Counter()
    with ThreadPoolExecutor(max_workers=4) as writers:
        pending: List[Future] = []
        for targets, results in batches:
            for target, result in zip(targets, results):
                detections = kept_detections(result, target["orig_size"], category_map, conf_threshold)
                per_class.update(d.name for d in detections)
                records += coco_records(detections, int(target["image_id"]), target["file_name"], category_map)
                pending.append(writers.submit(_write_image_outputs, dataset, int(target["image_id"]),
                                              target["output_name"], detections, colors,
                                              int(settings.outline_width), out_dir))
            while len(pending) > MAX_PENDING_WRITES:
                pending.pop(0).result()
        for future in pending:
            future.result()  # re-raises a failed write here
    if predictor is not None:
        predictor.close()
    results_file = write_results_json(out_dir / RESULTS_FILE, records)
    summary = InferenceSummary(images=len(dataset), detections=len(records), per_class=dict(per_class.most_common()),
                               output_dir=out_dir, results_file=results_file,
                               seconds=time.perf_counter() - started)
    if log is not None:
        log(summary.line(conf_threshold))
        log(f"annotated images: {out_dir / ANNOTATED_DIR}")
        log(f"labels (KITTI): {out_dir / LABELS_DIR}")
        log(f"results (COCO): {results_file}")
    return summary


def load_inference_model(cfg, checkpoint: str, device: torch.device) -> InferenceModel:
    """The checkpoint's model in eval mode, deploy-fused, channels-last, on ``device``.

    Raises UserError when the file is missing, unsafe, or its weights do not
    fit the architecture it is built with.
    """
    payload = load_checkpoint(checkpoint, map_location="cpu")
    stored_config = payload.get("model_config") if isinstance(payload.get("model_config"), dict) else {}
    if "architecture" in payload:
        model = model_from_checkpoint(payload, checkpoint)
    else:
        model_cfg = _model_config_of(cfg.model, stored_config)
        num_classes = int(payload.get("num_classes") or _num_classes_without_checkpoint_info(payload, cfg))
        model = build_model(model_cfg, num_classes)
        _load_weights(model, model_state_from(payload, checkpoint), checkpoint)
    category_map = inference_category_map(payload, cfg, model.num_classes)
    num_select = int(stored_config.get("num_select") or cfg.model.num_select)
    model = model.fuse_for_deploy().to(device=device, memory_format=torch.channels_last).eval()
    return InferenceModel(model=model, category_map=category_map, num_select=num_select)


def inference_category_map(payload: Dict[str, Any], cfg, num_classes: int) -> CategoryMap:
    """Checkpoint categories, else the spec's classmap (label_map.txt), else COCO's when
    ``dataset.remap_mscoco_category``, else ``"0".."C-1"`` with ids = labels."""
    if payload.get("category_ids"):
        ids = [int(c) for c in payload["category_ids"]]
        names = [str(n) for n in payload.get("class_names") or []]
        category_map = CategoryMap(ids, names if len(names) == len(ids) else [str(c) for c in ids])
        where = "the checkpoint's categories"
    elif cfg.dataset.infer_data_sources.classmap:
        category_map = CategoryMap.from_label_map(cfg.dataset.infer_data_sources.classmap)
        where = f"dataset.infer_data_sources.classmap ({cfg.dataset.infer_data_sources.classmap})"
    elif getattr(cfg.dataset, "remap_mscoco_category", False):  # official COCO weights: 80 classes, 91-id numbering
        category_map = CategoryMap.mscoco()
        where = "dataset.remap_mscoco_category (the 80 COCO classes)"
    else:
        return CategoryMap(list(range(num_classes)), [str(label) for label in range(num_classes)])
    if len(category_map) > num_classes:
        raise UserError(f"{where} name {len(category_map)} classes but the model predicts {num_classes}")
    return category_map


def kept_detections(result: Dict[str, torch.Tensor], orig_size: torch.Tensor, category_map: CategoryMap,
                    conf_threshold: float) -> List[Detection]:
    """One image's post-processed ``result`` (``scores`` [K], ``labels`` [K], ``boxes`` [K,4] xyxy pixels)
    -> detections scored >= ``conf_threshold`` with a known class, boxes clipped to the image
    (letterboxing can put them past its edge), best first."""
    width, height = (float(v) for v in orig_size.tolist())
    scores, labels, boxes = result["scores"].float().cpu(), result["labels"].cpu(), result["boxes"].float().cpu()
    # Labels past the categories are the spare outputs of a head sized with TAO's "+1"; they name nothing.
    keep = (scores >= conf_threshold) & (labels < len(category_map))
    scores, labels, boxes = scores[keep], labels[keep], boxes[keep]
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    order = torch.argsort(scores, descending=True)
    return [Detection(box=tuple(boxes[i].tolist()), score=float(scores[i]), label=int(labels[i]),
                      name=category_map.name_of(int(labels[i]))) for i in order.tolist()]


def coco_records(detections: List[Detection], image_id: int, file_name: str,
                 category_map: CategoryMap) -> List[Dict[str, Any]]:
    """COCO result records (bbox [x, y, w, h] in pixels) with the image's ``file_name`` added."""
    return [{"image_id": image_id, "file_name": file_name, "category_id": category_map.category_id_of(d.label),
             "bbox": [round(d.box[0], 2), round(d.box[1], 2), round(d.box[2] - d.box[0], 2),
                      round(d.box[3] - d.box[1], 2)],
             "score": round(d.score, 5)} for d in detections]


def write_results_json(path: Path, records: List[Dict[str, Any]]) -> Path:
    """A JSON list with one record a line: readable, and small for thousands of images."""
    body = ",\n".join(json.dumps(record) for record in records)
    return write_text_atomic(path, f"[\n{body}\n]\n" if records else "[]\n")


def _batches(loader: DataLoader, model: nn.Module, device: torch.device):
    """(outputs of the model, targets) for every batch of ``loader``."""
    with torch.inference_mode():
        for images, targets in loader:
            images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            yield model(images), targets


def _model_results(loader: DataLoader, loaded: InferenceModel, device: torch.device) -> BatchResults:
    """A PyTorch model's detections per batch, boxes in original-image pixels."""
    postprocessor = PostProcessor(num_select=loaded.num_select)
    for outputs, targets in _batches(loader, loaded.model, device):
        sizes = torch.stack([t["norm_size"] for t in targets]).to(device)
        yield targets, postprocessor(outputs, sizes)


def _predictor_results(loader: DataLoader, predictor: Predictor) -> BatchResults:
    """An exported model's detections per batch (same layout as :func:`_model_results`)."""
    for images, targets in loader:
        labels, boxes, scores = predict_any_batch(predictor, images.numpy())
        sizes = np.stack([t["norm_size"].numpy() for t in targets])
        boxes = scale_boxes(boxes, tuple(images.shape[-2:]), sizes)
        yield targets, [{"scores": torch.from_numpy(s), "labels": torch.from_numpy(l), "boxes": torch.from_numpy(b)}
                        for l, b, s in zip(labels, boxes, scores)]


def _dataset_for(cfg, dataset: InferenceImages, predictor: Predictor, log: Log) -> InferenceImages:
    """The images at the exported model's input size (fixed in the file), whatever inference.input_* say."""
    size = predictor.info.input_size
    if not size or tuple(size) == (int(cfg.inference.input_height), int(cfg.inference.input_width)):
        return dataset
    if log is not None:
        log(f"note: {predictor.path} was exported for {size[0]}x{size[1]} input; images are resized to that "
            f"(inference.input_height/input_width say {cfg.inference.input_height}x{cfg.inference.input_width})")
    return _dataset(cfg, size)


def _write_image_outputs(dataset: InferenceImages, index: int, output_name: str, detections: List[Detection],
                         colors: ClassColors, outline_width: int, out_dir: Path) -> None:
    """The annotated image and the label file of one image (runs in a writer thread)."""
    image = draw_detections(dataset.read_original(index), detections, colors, outline_width)
    save_image_atomic(image, out_dir / ANNOTATED_DIR / output_name)
    lines = kitti_lines(detections)
    write_text_atomic((out_dir / LABELS_DIR / output_name).with_suffix(".txt"),
                      "\n".join(lines) + ("\n" if lines else ""))


def _dataset(cfg, size: Optional[Tuple[int, int]] = None) -> InferenceImages:
    """The images, resized to ``size`` (default [inference.input_height, inference.input_width]) as the data
    pipeline resizes."""
    size = [int(v) for v in size] if size else [int(cfg.inference.input_height), int(cfg.inference.input_width)]
    for key, value in (("input_height", size[0]), ("input_width", size[1])):
        if value % SIZE_MULTIPLE:
            raise UserError(f"inference.{key}: {value} is not a multiple of {SIZE_MULTIPLE} "
                            f"(RT-DETR's coarsest feature map is stride {SIZE_MULTIPLE})")
    transforms = eval_transforms(size, bool(cfg.dataset.augmentation.preserve_aspect_ratio))
    sources = cfg.dataset.infer_data_sources
    image_dirs = sources.image_dir if isinstance(sources.image_dir, (list, tuple)) else [sources.image_dir]
    return InferenceImages(image_dirs, transforms, per_source_folders=bool(cfg.inference.is_internal))


def _loader(cfg, dataset: InferenceImages) -> DataLoader:
    """Batches in file order: ``inference.batch_size`` (-1: ``dataset.batch_size``), ``dataset.workers`` workers."""
    batch_size = int(cfg.inference.batch_size)
    if batch_size <= 0:
        batch_size = int(cfg.dataset.batch_size)
    workers = max(0, min(int(cfg.dataset.workers), len(dataset) // max(1, batch_size)))
    return DataLoader(dataset, batch_size=max(1, batch_size), shuffle=False, num_workers=workers,
                      collate_fn=BatchCollate(), pin_memory=bool(cfg.dataset.pin_memory) and torch.cuda.is_available())


def _device(settings, log: Log) -> torch.device:
    """``cuda:<gpu_ids[0]>`` when CUDA is present, else the CPU; inference uses one device."""
    if int(settings.num_gpus) > 1 and log is not None:
        log(f"note: inference runs on one device; inference.num_gpus={settings.num_gpus} is not split across GPUs")
    if not torch.cuda.is_available():
        return torch.device("cpu")
    gpu = int(settings.gpu_ids[0]) if settings.gpu_ids else 0
    if gpu >= torch.cuda.device_count():
        raise UserError(f"inference.gpu_ids: GPU {gpu} does not exist ({torch.cuda.device_count()} visible)")
    return torch.device("cuda", gpu)


def _check_supported(settings) -> None:
    """Refuse the TAO inference options this command does not run, rather than silently ignoring them."""
    if settings.is_quantized:
        raise UserError("inference.is_quantized: quantized checkpoints are not supported by this command")
    if int(settings.num_nodes) > 1:
        raise UserError("inference.num_nodes: inference runs on one node")


def _model_config_of(spec_model, stored: Dict[str, Any]):
    """The spec's ``model.*`` with the checkpoint's stored ``model_config`` values over it (the weights need those)."""
    if not stored or not dataclasses.is_dataclass(spec_model):
        return spec_model
    names = {f.name for f in dataclasses.fields(spec_model)}
    # frozen_fm is a nested section stored as a dict; the spec keeps its own (it must be disabled anyway).
    return dataclasses.replace(spec_model, **{k: v for k, v in stored.items() if k in names and k != "frozen_fm"})


def _num_classes_without_checkpoint_info(payload: Dict[str, Any], cfg) -> int:
    """Head size for a checkpoint that does not say it: its category list, else the spec's dataset.num_classes."""
    if payload.get("category_ids"):
        return len(payload["category_ids"])
    return int(cfg.dataset.num_classes)


def _load_weights(model: nn.Module, state: Dict[str, torch.Tensor], checkpoint: str) -> None:
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of another shape: another head size or width
        first = str(error).strip().splitlines()[-1].strip()
        raise UserError(f"inference.checkpoint: {checkpoint} does not fit model.* of the spec ({first})") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing:
        raise UserError(f"inference.checkpoint: {checkpoint} does not fit model.* of the spec "
                        f"(missing {len(missing)} weights, e.g. {missing[0]})")

