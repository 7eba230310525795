"""ONNX export: a checked graph with the post-processor inside that ONNX Runtime runs like PyTorch."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from trainers.errors import UserError
from trainers.rtdetr.export import export_onnx
from trainers.rtdetr.export.compare import max_abs_difference
from trainers.rtdetr.runtime import load_predictor

from .conftest import CATEGORY_IDS, CLASS_NAMES, INPUT


def test_the_graph_passes_the_checker_at_opset_17_with_documented_inputs_and_outputs(deploy_inputs):
    model = onnx.load(str(deploy_inputs.onnx))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    session = ort.InferenceSession(str(deploy_inputs.onnx), providers=["CPUExecutionProvider"])
    (images,) = session.get_inputs()
    assert images.name == "images" and images.type == "tensor(float)"
    assert images.shape[1:] == [3, INPUT, INPUT] and isinstance(images.shape[0], str)  # dynamic batch
    outputs = {o.name: o.type for o in session.get_outputs()}
    assert outputs == {"labels": "tensor(int64)", "boxes": "tensor(float)", "scores": "tensor(float)"}
    labels, boxes, scores = session.run(["labels", "boxes", "scores"],
                                        {"images": np.random.rand(3, 3, INPUT, INPUT).astype(np.float32)})
    assert labels.shape == (3, 20) and boxes.shape == (3, 20, 4) and scores.shape == (3, 20)
    assert (np.diff(scores, axis=1) <= 0).all(), "best first"
    assert ((labels >= 0) & (labels < len(CATEGORY_IDS))).all()
    assert (boxes[..., 2:] >= boxes[..., :2]).all() and boxes.max() <= INPUT * 1.5, "xyxy in input pixels"


def test_the_file_alone_names_its_classes_and_input(deploy_inputs):
    props = {p.key: p.value for p in onnx.load(str(deploy_inputs.onnx)).metadata_props}
    assert json.loads(props["category_ids"]) == CATEGORY_IDS
    assert json.loads(props["class_names"]) == CLASS_NAMES
    assert (props["num_select"], props["input_height"], props["input_width"], props["batch_size"]) == \
        ("20", str(INPUT), str(INPUT), "-1")
    info = load_predictor(deploy_inputs.onnx).info
    assert info.category_ids == CATEGORY_IDS and info.input_size == (INPUT, INPUT) and info.fixed_batch is None


def test_onnxruntime_agrees_with_the_pytorch_checkpoint(deploy_inputs):
    report = deploy_inputs.report
    assert report.passed and report.max_abs_diff <= 1e-3
    assert "ONNX Runtime vs PyTorch max |diff|" in report.line() and len(report.line().splitlines()) == 1
    # Independently of the exporter's own check: other images, both predictors.
    images = np.random.default_rng(3).random((2, 3, INPUT, INPUT), dtype=np.float32)
    onnx_out = load_predictor(deploy_inputs.onnx).predict(images)
    torch_out = load_predictor(deploy_inputs.checkpoint).predict(images)
    assert max_abs_difference(onnx_out, torch_out, (INPUT, INPUT)) <= 1e-3
    np.testing.assert_allclose(np.sort(onnx_out[2], axis=1), np.sort(torch_out[2], axis=1), atol=1e-5)


def test_the_fp16_variant_keeps_float32_io_and_stays_close(deploy_inputs):
    path = deploy_inputs.report.fp16_file
    assert path == deploy_inputs.onnx.with_name("model_fp16.onnx")
    model = onnx.load(str(path))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    images = np.random.default_rng(4).random((2, 3, INPUT, INPUT), dtype=np.float32)
    labels, boxes, scores = load_predictor(path).predict(images)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    reference = load_predictor(deploy_inputs.checkpoint).predict(images)
    assert np.abs(np.sort(scores, axis=1) - np.sort(reference[2], axis=1)).max() < 1e-2
    assert deploy_inputs.report.fp16_max_abs_diff < 5e-2


def test_deepstream_files_are_written_beside_the_onnx(deploy_inputs):
    import yaml

    folder = deploy_inputs.onnx.parent
    assert (folder / "labels.txt").read_text().splitlines() == CLASS_NAMES
    config = yaml.safe_load((folder / "nvdsinfer_config.yaml").read_text())
    prop = config["property"]
    assert prop["onnx-file"] == "model.onnx" and prop["labelfile-path"] == "labels.txt"
    assert prop["infer-dims"] == f"3;{INPUT};{INPUT}" and prop["num-detected-classes"] == 3
    assert prop["output-blob-names"] == "labels;boxes;scores" and prop["cluster-mode"] == 4
    assert abs(prop["net-scale-factor"] - 1 / 255) < 1e-9 and "class-attrs-all" in config


@pytest.mark.slow
def test_a_fixed_batch_export_runs_any_batch_through_predict_any_batch(deploy_inputs, tmp_path):
    from trainers.rtdetr.runtime import predict_any_batch

    report = export_onnx(deploy_inputs.checkpoint, tmp_path / "b2.onnx", input_height=INPUT, input_width=INPUT,
                         batch_size=2, opset_version=16, log=None)
    assert report.passed
    session = ort.InferenceSession(str(report.onnx_file), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [2, 3, INPUT, INPUT]
    predictor = load_predictor(report.onnx_file)
    assert predictor.info.fixed_batch == 2
    images = np.random.default_rng(5).random((3, 3, INPUT, INPUT), dtype=np.float32)
    labels, boxes, scores = predict_any_batch(predictor, images)
    assert scores.shape == (3, 20)
    single = predictor.predict(np.concatenate([images[2:], np.zeros_like(images[:1])]))
    np.testing.assert_allclose(scores[2], single[2][0], atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"opset_version": 15}, "export.opset_version: 15 is below 16"),
    ({"opset_version": 99}, "export.opset_version: 99 is above"),
    ({"input_height": 100}, "export.input_height: 100 is not a positive multiple of 32"),
    ({"batch_size": 0}, "export.batch_size: 0"),
])
def test_bad_arguments_are_refused_before_any_work(deploy_inputs, tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message.replace("|", r"\|")):
        export_onnx(deploy_inputs.checkpoint, tmp_path / "x.onnx", log=None, **kwargs)
    assert not (tmp_path / "x.onnx").exists()


def test_a_checkpoint_without_an_architecture_names_the_fix(tmp_path):
    from trainers.rtdetr.checkpoint import save_checkpoint

    bare = save_checkpoint({"model": {"w": torch.ones(1)}}, tmp_path / "bare.pth")
    with pytest.raises(UserError, match="import-weights"):
        export_onnx(bare, tmp_path / "x.onnx", log=None)
