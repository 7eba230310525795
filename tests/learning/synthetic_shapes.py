"""A synthetic detection set that an RT-DETR learns from scratch in minutes: solid shapes on plain backgrounds.

Each image holds one to three solid-colour shapes; the shape decides the class
(rectangle, ellipse, triangle) and the colour is random, so the model has to
look at the outline, not at a colour.  Category ids are sparse (201, 305, 412)
on purpose: it exercises the id <-> label remapping that custom data needs
(official RT-DETR's classic failure on such ids, see data/categories.py).

Why it lives under tests/: the learning test is the one that must keep
running in the default suite; benchmarks/bench_learning.py (a script that puts
the repository root on sys.path) imports it from here, so both draw the very
same data.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES: Tuple[Tuple[int, str], ...] = ((201, "rectangle"), (305, "ellipse"), (412, "triangle"))


def _overlaps(box: Sequence[float], boxes: Sequence[Sequence[float]], limit: float = 0.1) -> bool:
    """True when ``box`` (x0, y0, x1, y1) has IoU above ``limit`` with any of ``boxes``: shapes stay separable."""
    for other in boxes:
        ix = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
        iy = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
        inter = ix * iy
        union = (box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1]) - inter
        if inter / union > limit:
            return True
    return False


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: Sequence[int], colour: Tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if kind == "rectangle":
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=colour)
    elif kind == "ellipse":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=colour)
    else:  # an isosceles triangle pointing up: its bounding box is the drawn box
        draw.polygon([((x0 + x1 - 1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=colour)


def _distinct_colour(rng: np.random.Generator, background: np.ndarray) -> Tuple[int, int, int]:
    """A random colour far enough from the background to be seen (not a class cue: every class draws alike)."""
    while True:
        colour = rng.integers(0, 256, 3)
        if np.abs(colour.astype(int) - background.astype(int)).sum() > 180:
            return tuple(int(c) for c in colour)


def draw_image(rng: np.random.Generator, size: int, min_side: float = 0.18, max_side: float = 0.45
               ) -> Tuple[Image.Image, List[Dict]]:
    """One ``size`` x ``size`` image and its boxes ``{"category_id", "bbox": [x, y, w, h]}`` in pixels."""
    background = rng.integers(0, 256, 3)
    pixels = np.broadcast_to(background, (size, size, 3)).astype(np.int16)
    pixels = pixels + rng.normal(0.0, 8.0, (size, size, 3)).astype(np.int16)   # mild sensor-like noise
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    objects, boxes = [], []
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(20):
            w, h = (rng.uniform(min_side, max_side, 2) * size).astype(int)
            x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            box = [x0, y0, x0 + int(w), y0 + int(h)]
            if not _overlaps(box, boxes):
                break
        else:
            continue
        category_id, kind = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
        # Draw over the noise after it, so shape pixels are solid: edges are clean.
        _draw_shape(draw, kind, box, _distinct_colour(rng, background))
        boxes.append(box)
        objects.append({"category_id": category_id, "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    return image, objects


def write_shapes_split(root: Path, name: str, count: int, size: int = 128, seed: int = 0,
                       min_side: float = 0.18, max_side: float = 0.45) -> Path:
    """``count`` images under ``root/<name>/`` and the COCO json ``root/<name>.json``; returns the json path.
    Shapes' sides are ``min_side``..``max_side`` of the image side."""
    rng = np.random.default_rng(seed)
    image_dir = Path(root) / name
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        image, objects = draw_image(rng, size, min_side, max_side)
        file_name = f"{name}_{index:05d}.png"
        image.save(image_dir / file_name)
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for obj in objects:
            x, y, w, h = obj["bbox"]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": obj["category_id"],
                                "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h),
                                "iscrowd": 0})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": cid, "name": cname} for cid, cname in CATEGORIES]}
    json_path = Path(root) / f"{name}.json"
    json_path.write_text(json.dumps(coco))
    return json_path


def write_shapes_dataset(root: Path, train_count: int, val_count: int, size: int = 128, seed: int = 0,
                         min_side: float = 0.18, max_side: float = 0.45) -> Dict[str, Path]:
    """Train and val splits drawn from different seeds; returns ``{split: json}`` and ``{split_dir: folder}``."""
    return {"train": write_shapes_split(root, "train", train_count, size, seed, min_side, max_side),
            "val": write_shapes_split(root, "val", val_count, size, seed + 1_000_003, min_side, max_side),
            "train_dir": Path(root) / "train", "val_dir": Path(root) / "val"}
