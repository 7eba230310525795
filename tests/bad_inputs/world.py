"""The good inputs every bad-input case starts from: a tiny shapes set, a tiny checkpoint, a valid spec.

Each case copies what it needs into its own folder and breaks one thing, so a
failure names exactly one input.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import struct
import tarfile
import zlib
from pathlib import Path
from typing import Any, Dict

import torch
import yaml

from tests.learning.synthetic_shapes import CATEGORIES, write_shapes_dataset
from tests.learning.tiny_preset import shapes_spec
from tests.sweep.tiny_sweep import TINY_MODEL
from trainers.rtdetr.checkpoint import save_checkpoint
from trainers.rtdetr.config.model import ModelConfig
from trainers.rtdetr.model import build_model

SIZE = 64


@dataclasses.dataclass
class World:
    root: Path
    data: Dict[str, Path]
    checkpoint: Path           # a good tiny checkpoint, as the trainer writes it
    spec: Dict[str, Any]       # a good train/evaluate/inference/export spec (results_dir set per case)

    def spec_with(self, folder: Path, **sections) -> Dict[str, Any]:
        """A copy of the good spec writing into ``folder/results``; ``sections`` deep-merge into it."""
        spec = copy.deepcopy(self.spec)
        spec["results_dir"] = str(folder / "results")
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(spec.get(key), dict):
                spec[key] = {**spec[key], **value}
            else:
                spec[key] = value
        return spec

    def coco(self, split: str = "val") -> Dict[str, Any]:
        return json.loads(self.data[split].read_text())


def make_world(root: Path) -> World:
    data = write_shapes_dataset(root / "data", 4, 2, size=SIZE, seed=0)
    config = ModelConfig(**{**dataclasses.asdict(ModelConfig()), "backbone": "resnet_18", **TINY_MODEL})
    torch.manual_seed(0)
    model = build_model(config, len(CATEGORIES))
    checkpoint = save_checkpoint(
        {"model": model.state_dict(), "model_config": dataclasses.asdict(config), "num_classes": len(CATEGORIES),
         "category_ids": [c for c, _ in CATEGORIES], "class_names": [n for _, n in CATEGORIES]},
        root / "good.pth")
    spec = shapes_spec(data, root / "results", size=SIZE, epochs=1, batch_size=2)
    spec["model"].update(TINY_MODEL)
    spec["dataset"]["workers"] = 1
    spec["dataset"]["infer_data_sources"] = {"image_dir": [str(data["val_dir"])]}
    return World(root=root, data=data, checkpoint=checkpoint, spec=spec)


def write_yaml(data: Dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_json(data: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


class CodeRunner:
    """A pickle payload: unpickling it calls ``os.mkdir(marker)`` - proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def pickle_payload_checkpoint(good: Path, path: Path, marker: Path) -> Path:
    """A real checkpoint (loads and runs if one ignores the extra key) with a code-running object inside."""
    payload = torch.load(good, weights_only=True)
    payload["training_note"] = CodeRunner(marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with one tiny compressed row of data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def jpeg_header(width: int, height: int) -> bytes:
    """A baseline JPEG start (SOI + SOF0) declaring ``width`` x ``height``, and nothing after it."""
    sof = struct.pack(">BBHBHHB", 0xFF, 0xC0, 17, 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8" + sof


def tar_with(path: Path, entries) -> Path:
    """A .tar.gz of ``entries``: (name, kind, data_or_linkname) with kind "file", "symlink" or "hardlink"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, content in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = content
                tar.addfile(info)
    return path
