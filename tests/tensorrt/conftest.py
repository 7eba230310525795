"""Tiny RT-DETR ONNX exports (made once) and a spec for the TensorRT tests.

The exports are built like the deploy graph: the model plus PostProcessor(deploy=True)
with boxes in input pixels, input ``images`` and outputs labels, boxes, scores.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import onnx
import pytest
import torch

from tests.model.test_export_and_checkpoints import tiny_model
from trainers.rtdetr.model import PostProcessor

SIZE = 64
CATEGORY_IDS = [3, 7, 11, 12]
CLASS_NAMES = ["cat", "dog", "fox", "owl"]


class DeployGraph(torch.nn.Module):
    def __init__(self, model, num_select: int):
        super().__init__()
        self.model, self.postprocessor = model, PostProcessor(num_select, deploy=True)

    def forward(self, images):
        height, width = images.shape[-2:]
        sizes = torch.tensor([[width, height]], dtype=torch.int64).expand(images.shape[0], 2)
        return self.postprocessor(self.model(images), sizes)


def export(path, opset: int = 17, batch: int = 1, dynamic_batch: bool = True, metadata: bool = True):
    graph = DeployGraph(tiny_model().fuse_for_deploy(), num_select=20).eval()
    axes = {name: {0: "batch"} for name in ("images", "labels", "boxes", "scores")} if dynamic_batch else None
    torch.onnx.export(graph, (torch.rand(batch, 3, SIZE, SIZE),), str(path), opset_version=opset, dynamo=False,
                      input_names=["images"], output_names=["labels", "boxes", "scores"], dynamic_axes=axes)
    if metadata:
        model = onnx.load(str(path))
        for key, value in (("category_ids", json.dumps(CATEGORY_IDS)), ("class_names", json.dumps(CLASS_NAMES)),
                           ("num_select", "20")):
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(path))
    return path


def with_fixed_batch(source, path, batch: int):
    """The same graph declaring a fixed batch and no metadata (only the interface matters to the plan)."""
    model = onnx.load(str(source))
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = batch
    del model.metadata_props[:]
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def onnx_files(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("tensorrt_onnx")
    dynamic = export(root / "dynamic.onnx")
    return SimpleNamespace(dynamic=dynamic, fixed2=with_fixed_batch(dynamic, root / "fixed2.onnx", 2), root=root)


@pytest.fixture(scope="session")
def opset16_onnx(tmp_path_factory):
    """Opset 16: LayerNorm exported decomposed (ReduceMean, Sub, Pow, ..., Div, Mul, Add)."""
    return export(tmp_path_factory.mktemp("tensorrt_onnx16") / "opset16.onnx", opset=16)


@pytest.fixture
def spec(tmp_path, onnx_files):
    path = tmp_path / "spec.yaml"
    path.write_text(f"results_dir: {tmp_path / 'results'}\n"
                    f"gen_trt_engine:\n  onnx_file: {onnx_files.dynamic}\n")
    return path
