"""Small synthetic datasets written by the tests themselves."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
from PIL import Image


def write_image(path: Path, size=(64, 48), mode: str = "RGB", seed: int = 0, fmt: Optional[str] = None) -> Path:
    """A random-noise image of ``size`` (w, h) in ``mode``, saved at ``path``."""
    rng = np.random.default_rng(seed)
    width, height = size
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    image = rgb.convert(mode) if mode != "RGB" else rgb
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


def write_coco(path: Path, images: Sequence[Dict], annotations: Sequence[Dict],
               categories: Optional[Sequence[Dict]] = None) -> Path:
    """A COCO detection json; annotation ids are filled in when absent."""
    anns = []
    for index, ann in enumerate(annotations):
        ann = dict(ann)
        ann.setdefault("id", index + 1)
        ann.setdefault("iscrowd", 0)
        if "bbox" in ann and isinstance(ann["bbox"], list) and len(ann["bbox"]) == 4:
            ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]) if all(
                isinstance(v, (int, float)) for v in ann["bbox"]) else 0.0)
        anns.append(ann)
    data = {"images": list(images), "annotations": anns,
            "categories": list(categories) if categories is not None else [{"id": 1, "name": "thing"}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def simple_split(root: Path, count: int = 6, size=(64, 48), category_ids=(1,),
                 boxes_per_image: int = 2, name: str = "train") -> Path:
    """``count`` noise images under ``root/images`` with valid boxes; returns the json path."""
    images, annotations = [], []
    for index in range(count):
        file_name = f"img_{index}.png"
        write_image(root / "images" / file_name, size=size, seed=index)
        images.append({"id": 100 + index, "file_name": file_name, "width": size[0], "height": size[1]})
        for k in range(boxes_per_image):
            x, y = 4 + 6 * k, 3 + 5 * k
            annotations.append({"image_id": 100 + index, "category_id": category_ids[(index + k) % len(category_ids)],
                                "bbox": [x, y, size[0] // 2, size[1] // 2]})
    categories = [{"id": cid, "name": f"class{cid}"} for cid in category_ids]
    return write_coco(root / f"{name}.json", images, annotations, categories)


def spec(train: Iterable[tuple] = (), val: Optional[tuple] = None, **dataset_overrides):
    """An ExperimentConfig from the real config code, with the given (image_dir, json_file) sources."""
    from trainers.rtdetr.config import experiment_from_dict

    dataset: Dict = {"train_data_sources": [{"image_dir": str(d), "json_file": str(j)} for d, j in train],
                     "workers": 0, "batch_size": 2}
    if val is not None:
        dataset["val_data_sources"] = {"image_dir": str(val[0]), "json_file": str(val[1])}
    augmentation = dataset_overrides.pop("augmentation", None)
    dataset.update(dataset_overrides)
    if augmentation:
        dataset["augmentation"] = augmentation
    return experiment_from_dict({"dataset": dataset})


def boxes_valid(boxes_cxcywh) -> bool:
    """Normalised (cx, cy, w, h): positive size and every corner inside [0, 1]."""
    b = np.asarray(boxes_cxcywh, dtype=np.float64).reshape(-1, 4)
    x0, y0 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2
    x1, y1 = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    eps = 1e-5
    return bool(np.all(b[:, 2] > 0) and np.all(b[:, 3] > 0) and np.all(x0 >= -eps) and np.all(y0 >= -eps)
                and np.all(x1 <= 1 + eps) and np.all(y1 <= 1 + eps))


def namespace(**kwargs) -> SimpleNamespace:
    return SimpleNamespace(**kwargs)


def rgb_list(image: Image.Image) -> List:
    return list(image.convert("RGB").getdata())
