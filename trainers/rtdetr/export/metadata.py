"""What an exported model carries besides its graph, so that the file alone can be evaluated or run.

Stored as ONNX ``metadata_props`` (string key -> string value; lists as JSON)
and read back into a :class:`~trainers.rtdetr.runtime.predictor.ModelInfo`.
The TensorRT engine builder can copy the same dict beside its engine.
"""
from __future__ import annotations

import json
from typing import Dict, Mapping

from trainers.errors import UserError
from trainers.rtdetr.runtime.predictor import ModelInfo

PRODUCER = "tao-automl"
# Tells any reader what ``boxes`` holds (see runtime/predictor.py).
BOX_FORMAT = "xyxy_input_pixels"


def info_to_props(info: ModelInfo) -> Dict[str, str]:
    """ModelInfo -> ONNX metadata_props (all strings)."""
    height, width = info.input_size if info.input_size else (-1, -1)
    props = {
        "producer": PRODUCER,
        "box_format": BOX_FORMAT,
        "category_ids": json.dumps([int(c) for c in info.category_ids]),
        "class_names": json.dumps([str(n) for n in info.class_names]),
        "num_select": str(int(info.num_select)),
        "input_height": str(int(height)),
        "input_width": str(int(width)),
        "batch_size": str(int(info.fixed_batch) if info.fixed_batch else -1),
    }
    props.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in info.extra.items()})
    return props


def info_from_props(props: Mapping[str, str], path: str = "model") -> ModelInfo:
    """ONNX metadata_props -> ModelInfo; UserError when the file was not exported by this project."""
    missing = [k for k in ("category_ids", "num_select", "input_height", "input_width") if k not in props]
    if missing:
        raise UserError(f"{path}: no tao-automl metadata ({', '.join(missing)} missing); export it with "
                        f"`tao-automl export` so the file names its classes and input size")
    try:
        category_ids = [int(c) for c in json.loads(props["category_ids"])]
        class_names = [str(n) for n in json.loads(props.get("class_names", "[]"))]
        height, width = int(props["input_height"]), int(props["input_width"])
        batch = int(props.get("batch_size", "-1"))
        num_select = int(props["num_select"])
    except (ValueError, TypeError) as error:
        raise UserError(f"{path}: unreadable tao-automl metadata ({error})") from None
    known = {"producer", "box_format", "category_ids", "class_names", "num_select", "input_height", "input_width",
             "batch_size"}
    return ModelInfo(category_ids=category_ids,
                     class_names=class_names if len(class_names) == len(category_ids) else
                     [str(c) for c in category_ids],
                     num_select=num_select,
                     input_size=(height, width) if height > 0 and width > 0 else None,
                     fixed_batch=batch if batch > 0 else None,
                     extra={k: v for k, v in props.items() if k not in known})
