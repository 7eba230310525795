"""A tiny checkpoint, its ONNX export and a small COCO set whose boxes the model can find, made once.

The ground truth is drawn from the model's own confident detections (found on
the images resized as the data pipeline resizes them), so a correct runtime
scores a high mAP50 and any error in boxes, labels or category ids shows.
"""
from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from tests.model.test_export_and_checkpoints import TINY
from trainers.rtdetr.checkpoint import save_checkpoint
from trainers.rtdetr.config.model import ModelConfig
from trainers.rtdetr.export import export_onnx
from trainers.rtdetr.model import build_model
from trainers.rtdetr.runtime import load_predictor

CATEGORY_IDS = [201, 305, 412]   # sparse on purpose: outputs must carry these, not labels 0..2
CLASS_NAMES = ["rectangle", "ellipse", "triangle"]
INPUT = 64                       # model input (export and eval size)
IMAGE_SIZES = [(128, 128), (96, 128), (128, 96), (128, 128), (160, 128), (128, 128)]  # (width, height)
MODEL_CONFIG = ModelConfig(**TINY)


def tiny_checkpoint(path, seed: int = 0):
    """A trainer-style checkpoint (architecture, model_config, categories) with non-degenerate heads."""
    torch.manual_seed(seed)
    model = build_model(MODEL_CONFIG, len(CATEGORY_IDS))
    with torch.no_grad():  # distinct, spread scores and boxes: no top-k ties between runtimes
        for head in model.decoder.dec_score_head:
            head.bias.normal_(-2.0, 1.0)
            head.weight.normal_(0.0, 0.3)
        for head in model.decoder.dec_bbox_head:
            head.layers[-1].weight.normal_(0.0, 0.3)
    return save_checkpoint({"model": model.state_dict(), "architecture": model.arch.to_dict(),
                            "model_config": dataclasses.asdict(MODEL_CONFIG), "num_classes": len(CATEGORY_IDS),
                            "category_ids": CATEGORY_IDS, "class_names": CLASS_NAMES}, path)


def _images(folder):
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True)
    names = []
    for index, size in enumerate(IMAGE_SIZES):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # blocky colour fields: structure to react to
        name = f"img_{index}.png"
        Image.fromarray(pixels).resize(size, Image.NEAREST).save(folder / name)
        names.append((name, size))
    return names


def _ground_truth(checkpoint, folder, names):
    """COCO json: each image's four best detections by the PyTorch model, in original pixels."""
    predictor = load_predictor(checkpoint)
    images, annotations = [], []
    for image_id, (name, (width, height)) in enumerate(names, start=1):
        resized = Image.open(folder / name).convert("RGB").resize((INPUT, INPUT), Image.BILINEAR)
        batch = (np.asarray(resized, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None]
        labels, boxes, scores = predictor.predict(batch)
        boxes = boxes[0] * np.array([width, height, width, height]) / INPUT
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for label, box, score in list(zip(labels[0], boxes, scores[0]))[:4]:
            x0, y0, x1, y1 = np.clip(box, 0, [width, height, width, height])
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": CATEGORY_IDS[int(label)], "bbox": [float(x0), float(y0),
                                                                                  float(x1 - x0), float(y1 - y0)],
                                "area": float((x1 - x0) * (y1 - y0)), "iscrowd": 0})
    assert len(annotations) >= len(names), "the tiny model should find something in most images"
    categories = [{"id": cid, "name": name} for cid, name in zip(CATEGORY_IDS, CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}


@pytest.fixture(scope="session")
def deploy_inputs(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("deploy")
    checkpoint = tiny_checkpoint(root / "model.pth")
    report = export_onnx(checkpoint, root / "export" / "model.onnx", input_height=INPUT, input_width=INPUT,
                         fp16=True, serialize_nvdsinfer=True, log=None)
    folder = root / "images"
    names = _images(folder)
    coco = root / "test.json"
    coco.write_text(json.dumps(_ground_truth(checkpoint, folder, names)))
    spec = root / "spec.yaml"
    model_lines = "\n".join(f"  {key}: {json.dumps(value)}" for key, value in TINY.items())
    spec.write_text(f"""\
results_dir: {root / "results"}
model:
{model_lines}
dataset:
  num_classes: 3
  workers: 1
  batch_size: 4
  test_data_sources:
    image_dir: {folder}
    json_file: {coco}
  infer_data_sources:
    image_dir: ["{folder}"]
  augmentation:
    eval_spatial_size: [{INPUT}, {INPUT}]
inference:
  input_width: {INPUT}
  input_height: {INPUT}
  conf_threshold: 0.2
""")
    return SimpleNamespace(root=root, checkpoint=checkpoint, report=report, onnx=report.onnx_file, spec=spec,
                           coco=coco, images=folder)
