"""Quantize: calibration images as evaluation sees them, module patterns -> ONNX nodes, one-line errors,
and (slow) a trained tiny model quantized end to end."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from automl.cli import main
from automl.spec import load_spec
from tests.learning.synthetic_shapes import write_shapes_dataset
from tests.learning.tiny_preset import shapes_spec, write_spec
from trainers.errors import UserError
from trainers.rtdetr.quantize.calibration import CalibrationReader
from trainers.rtdetr.quantize.layers import node_module, plan_nodes


def nodes(*pairs):
    return [SimpleNamespace(name=name, op_type=op) for name, op in pairs]


GRAPH = nodes(("/model/backbone/conv1/conv1_1/conv/Conv", "Conv"),
              ("/model/backbone/res_layers.0/blocks.0/branch2a/conv/Conv", "Conv"),
              ("/model/encoder/encoder.0/layers.0/linear1/MatMul", "MatMul"),
              ("/model/decoder/decoder/query_pos_head/layers.0_1/MatMul", "MatMul"),
              ("/model/decoder/decoder/layers.0/cross_attn/sampling_offsets/MatMul", "MatMul"),
              ("/model/decoder/decoder/layers.0/cross_attn/attention_weights/MatMul", "MatMul"),
              ("/model/decoder/decoder/layers.0/cross_attn/value_proj/MatMul", "MatMul"),
              ("/model/decoder/decoder/layers.0/cross_attn/GridSample", "GridSample"),
              ("/postprocessor/TopK", "TopK"))


def test_node_names_map_back_to_module_names():
    assert node_module("/model/backbone/conv1/conv1_1/conv/Conv") == "backbone.conv1.conv1_1.conv"
    assert node_module("/model/decoder/decoder/query_pos_head/layers.0_1/MatMul") == \
        "decoder.decoder.query_pos_head.layers.0"        # a second call of the same module


def test_by_default_everything_but_the_deformable_sampling_is_int8():
    plan = plan_nodes(GRAPH)
    assert plan.nodes_to_quantize is None
    assert plan.nodes_to_exclude == ["/model/decoder/decoder/layers.0/cross_attn/sampling_offsets/MatMul",
                                     "/model/decoder/decoder/layers.0/cross_attn/attention_weights/MatMul"]


def test_layer_patterns_and_types_select_nodes_and_skip_names_exclude_them():
    int8 = {"dtype": "int8"}
    plan = plan_nodes(GRAPH, [{"module_name": "backbone.*", "weights": int8, "activations": int8},
                              {"module_name": "Linear", "weights": int8, "activations": int8}],
                      skip_names=["backbone.conv1*", "decoder.decoder.query_pos_head"])
    assert set(plan.nodes_to_quantize) == {n.name for n in GRAPH if n.op_type in ("Conv", "MatMul")}
    assert set(plan.nodes_to_exclude) == {"/model/backbone/conv1/conv1_1/conv/Conv",
                                          "/model/decoder/decoder/query_pos_head/layers.0_1/MatMul",
                                          "/model/decoder/decoder/layers.0/cross_attn/sampling_offsets/MatMul",
                                          "/model/decoder/decoder/layers.0/cross_attn/attention_weights/MatMul"}


@pytest.mark.parametrize("layer, message", [
    ({"module_name": "backbone.*", "weights": {"dtype": "float8_e4m3fn"}, "activations": {"dtype": "float8_e4m3fn"}},
     "quantize.layers.0.weights.dtype: float8_e4m3fn needs a GPU"),
    ({"module_name": "backbone.*", "weights": {"dtype": "int8"}},
     "quantize.layers.0: ONNX Runtime's CPU int8 kernels need both"),
    ({"module_name": "neck.*", "weights": {"dtype": "int8"}, "activations": {"dtype": "int8"}},
     "quantize.layers.0.module_name: 'neck.*' matches no"),
    ({"module_name": "backbone.*", "weights": {"dtype": "int4"}, "activations": {"dtype": "int8"}},
     "quantize.layers.0.weights.dtype: 'int4' is not supported"),
])
def test_unsupported_layer_settings_are_refused_with_the_key(layer, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("*", r"\*").replace(".", r"\.")):
        plan_nodes(GRAPH, [layer])


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantize")
    data = write_shapes_dataset(root / "shapes", 64, 16, size=96, seed=3)
    return root, data


def test_calibration_reader_feeds_images_preprocessed_like_evaluation(shapes, tmp_path):
    root, data = shapes
    spec = shapes_spec(data, tmp_path, size=96, epochs=1)
    spec["dataset"]["quant_calibration_data_sources"] = {"image_dir": str(data["val_dir"])}
    cfg = load_spec("rtdetr", write_spec(spec, tmp_path / "spec.yaml"), [], "quantize")
    reader = CalibrationReader(cfg, (64, 96), max_images=5)
    batches = list(iter(reader.get_next, None))
    assert len(batches) == 5 and len(reader) == 5
    images = batches[0]["images"]
    assert images.shape == (1, 3, 64, 96) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0                     # pixels / 255, no mean/std
    first = sorted(p for p in data["val_dir"].iterdir())[0]
    expected = np.asarray(Image.open(first).convert("RGB").resize((96, 64), Image.BILINEAR), np.float32) / 255
    assert np.abs(images[0].transpose(1, 2, 0) - expected).mean() < 0.02     # the same resize as evaluation
    reader.rewind()
    assert reader.get_next() is not None


def test_missing_calibration_images_and_gpu_only_settings_are_one_line(shapes, tmp_path, capsys):
    root, data = shapes
    spec = shapes_spec(data, tmp_path, size=96, epochs=1)
    spec_path = write_spec(spec, tmp_path / "spec.yaml")
    from trainers.rtdetr.checkpoint import save_checkpoint
    from trainers.rtdetr.config.model import ModelConfig
    from trainers.rtdetr.model import build_model

    model = build_model(ModelConfig(backbone="resnet_18", hidden_dim=32, feat_channels=[32] * 3, nheads=2,
                                    dim_feedforward=64, dec_layers=1, num_queries=10, num_select=10), 3)
    checkpoint = save_checkpoint({"model": model.state_dict(), "architecture": model.arch.to_dict(),
                                  "num_classes": 3}, tmp_path / "m.pth")
    for extra, message in [([], "dataset.quant_calibration_data_sources.image_dir: not set"),
                           (["quantize.algorithm=awq_lite"], "quantize.algorithm: awq_lite is a GPU"),
                           (["quantize.backend_kwargs={bits: 4}"], "quantize.backend_kwargs: unknown bits"),
                           ([f"quantize.model_path={tmp_path / 'none.pth'}"], "none.pth: file not found")]:
        argv = ["quantize", "--skill", "rtdetr", "-e", str(spec_path), f"quantize.model_path={checkpoint}", *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


@pytest.mark.slow
def test_a_trained_tiny_model_quantizes_runs_and_scores_close(shapes, tmp_path, capsys):
    """The tiny preset trained briefly on shapes (the budget of a test: its mAP is low, so the check is also on
    the detections themselves); int8 must run through the runtime and agree with FP32."""
    from trainers.rtdetr.engine.trainer import train

    root, data = shapes
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        spec = shapes_spec(data, tmp_path / "results", size=96, epochs=2)
        spec["train"]["validation_interval"] = 2
        spec["dataset"]["quant_calibration_data_sources"] = {"image_dir": str(data["train_dir"])}
        spec["quantize"] = {"backend_kwargs": {"calibration_images": 16, "latency_iterations": 10}}
        spec_path = write_spec(spec, tmp_path / "spec.yaml")
        summary = train(load_spec("rtdetr", spec_path, [], "train"), log=lambda *_: None)
        assert main(["quantize", "--skill", "rtdetr", "-e", str(spec_path),
                     f"quantize.model_path={summary['best_checkpoint']}"]) == 0
    finally:
        torch.set_num_threads(before)
    import json

    out = tmp_path / "results" / "quantize"
    report = json.loads((out / "quantize.json").read_text())
    assert (out / "model_int8.onnx").is_file() and (out / "model_fp32.onnx").is_file()
    assert abs(report["val_mAP50_drop"]) <= 0.05, report
    from trainers.rtdetr.runtime import load_predictor

    images = np.random.default_rng(0).random((1, 3, 96, 96), dtype=np.float32)
    with load_predictor(out / "model_fp32.onnx") as fp32, load_predictor(out / "model_int8.onnx") as int8:
        _, boxes32, scores32 = fp32.predict(images)
        _, boxes8, scores8 = int8.predict(images)
    assert abs(float(scores32[0, 0]) - float(scores8[0, 0])) < 0.1     # the best detection survives int8
    assert np.abs(np.sort(scores32[0]) - np.sort(scores8[0])).mean() < 0.05
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "model_int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} & ops or {"QLinearConv"} & ops
