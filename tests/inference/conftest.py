"""A tiny RT-DETR checkpoint and images in every source kind, made once for the inference tests."""
from __future__ import annotations

import dataclasses
import tarfile
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from trainers.rtdetr.checkpoint import save_checkpoint
from trainers.rtdetr.config.model import ModelConfig
from trainers.rtdetr.model import build_model

# Sparse dataset ids on purpose: results.json must carry these, not the labels 0 and 1.
CATEGORY_IDS = [3, 7]
CLASS_NAMES = ["cat", "dog"]
COLORS = {"cat": (255, 0, 0), "dog": (0, 255, 0)}
TINY_MODEL = ModelConfig(backbone="resnet_18", hidden_dim=32, feat_channels=[32] * 3, nheads=2, dim_feedforward=64,
                         dec_layers=2, num_queries=20, num_select=20, expansion=0.5)

# relative output name -> (width, height) of its source image
EXPECTED_OUTPUTS = {
    "a.png": (80, 60),
    "sub/b.png": (50, 70),
    "seq_0001.png": (30, 40),
    "seq_0002.png": (30, 40),
    "images/c.png": (64, 64),
}


def _gray(size, value: int) -> Image.Image:
    return Image.new("RGB", size, (value, value, value))


@pytest.fixture(scope="session")
def inference_inputs(tmp_path_factory) -> SimpleNamespace:
    """Checkpoints (with and without 'architecture'), a folder with an .h5 file, a tar.gz, a spec.

    Archives are extracted under the test's folders, never the user's cache.
    """
    root = tmp_path_factory.mktemp("inference")
    environment = pytest.MonkeyPatch()
    environment.setenv("TAO_AUTOML_CACHE", str(root / "cache"))
    torch.manual_seed(0)
    model = build_model(TINY_MODEL, len(CATEGORY_IDS))
    categories = {"num_classes": len(CATEGORY_IDS), "category_ids": CATEGORY_IDS, "class_names": CLASS_NAMES}
    # As import-weights writes it: the architecture alone describes the model.
    imported = save_checkpoint({"model": model.state_dict(), "architecture": model.arch.to_dict(), **categories},
                               root / "imported.pth")
    # As the trainer writes it: model_config, no architecture.
    trained = save_checkpoint({"model": model.state_dict(), "model_config": dataclasses.asdict(TINY_MODEL),
                               **categories}, root / "trained.pth")
    # Official-style weights only: the spec's model.* and a classmap must say what they are.
    bare = save_checkpoint({"model": model.state_dict()}, root / "bare.pth")

    folder = root / "images"
    (folder / "sub").mkdir(parents=True)
    _gray((80, 60), 128).save(folder / "a.png")
    _gray((50, 70), 100).save(folder / "sub" / "b.png")
    with h5py.File(folder / "seq.h5", "w") as handle:  # frames in BGR order, as TAO stores them
        handle.create_dataset("rgb/0001", data=np.full((40, 30, 3), 90, np.uint8))
        handle.create_dataset("rgb/0002", data=np.full((40, 30, 3), 60, np.uint8))
    staging = root / "staging" / "images"
    staging.mkdir(parents=True)
    _gray((64, 64), 120).save(staging / "c.png")
    archive = root / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname="images")
    label_map = root / "label_map.txt"
    label_map.write_text("\n".join(CLASS_NAMES) + "\n")

    color_map = ", ".join(f'{name}: "#{r:02x}{g:02x}{b:02x}"' for name, (r, g, b) in COLORS.items())
    spec = root / "spec.yaml"
    spec.write_text(f"""\
results_dir: {root / "results"}
model:
  backbone: resnet_18
  hidden_dim: 32
  feat_channels: [32, 32, 32]
  nheads: 2
  dim_feedforward: 64
  dec_layers: 2
  num_queries: 20
  num_select: 20
  expansion: 0.5
dataset:
  num_classes: 2
  workers: 1
  batch_size: 2
  infer_data_sources:
    image_dir: ["{folder}", "{archive}"]
inference:
  conf_threshold: 0.0
  input_width: 64
  input_height: 64
  outline_width: 2
  color_map: {{{color_map}}}
""")
    yield SimpleNamespace(root=root, spec=spec, imported=imported, trained=trained, bare=bare,
                          label_map=label_map, folder=folder, archive=archive)
    environment.undo()
