"""export, evaluate, inference and benchmark from the command line, on .pth and .onnx alike."""
from __future__ import annotations

import json

import numpy as np
import pytest

from automl.cli import main
from trainers.errors import UserError
from trainers.rtdetr.benchmark import measure_latency
from trainers.rtdetr.runtime import load_predictor

from .conftest import CATEGORY_IDS, INPUT


def cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_export_command_writes_into_results_dir_export_and_prints_one_check_line(deploy_inputs, tmp_path, capsys):
    code, out, err = cli(capsys, "export", "--skill", "rtdetr", "-e", str(deploy_inputs.spec),
                         f"results_dir={tmp_path}", f"export.checkpoint={deploy_inputs.checkpoint}",
                         "export.onnx_file=model.onnx", f"export.input_height={INPUT}", f"export.input_width={INPUT}")
    assert code == 0, err
    assert (tmp_path / "export" / "model.onnx").is_file()
    lines = [line for line in out.splitlines() if line.startswith("export:")]
    assert len(lines) == 1 and "(<= 1e-03: ok)" in lines[0]
    assert load_predictor(tmp_path / "export" / "model.onnx").info.category_ids == CATEGORY_IDS


@pytest.mark.slow
def test_evaluate_on_the_onnx_scores_the_same_map50_as_the_checkpoint(deploy_inputs, tmp_path, capsys):
    results = {}
    for name, model in (("pth", deploy_inputs.checkpoint), ("onnx", deploy_inputs.onnx)):
        code, out, err = cli(capsys, "evaluate", "--skill", "rtdetr", "-e", str(deploy_inputs.spec),
                             f"results_dir={tmp_path / name}", f"evaluate.checkpoint={model}")
        assert code == 0, err
        results[name] = json.loads((tmp_path / name / "evaluate" / "results.json").read_text())
    assert results["pth"]["test_mAP50"] > 0.5, "the ground truth is the model's own detections"
    assert abs(results["onnx"]["test_mAP50"] - results["pth"]["test_mAP50"]) <= 0.005
    assert results["onnx"]["checkpoint"].endswith("model.onnx")


@pytest.mark.slow
def test_inference_on_the_onnx_writes_the_same_detections_as_the_checkpoint(deploy_inputs, tmp_path, capsys):
    records = {}
    for name, model in (("pth", deploy_inputs.checkpoint), ("onnx", deploy_inputs.onnx)):
        code, out, err = cli(capsys, "inference", "--skill", "rtdetr", "-e", str(deploy_inputs.spec),
                             f"inference.results_dir={tmp_path / name}", f"inference.checkpoint={model}")
        assert code == 0, err
        records[name] = json.loads((tmp_path / name / "results.json").read_text())
        assert len(list((tmp_path / name / "images_annotated").iterdir())) == 6
    assert records["onnx"] and len(records["onnx"]) == len(records["pth"])
    key = lambda r: (r["image_id"], -r["score"], r["category_id"])  # noqa: E731
    for onnx_record, pth_record in zip(sorted(records["onnx"], key=key), sorted(records["pth"], key=key)):
        assert onnx_record["category_id"] == pth_record["category_id"] and onnx_record["category_id"] in CATEGORY_IDS
        assert onnx_record["score"] == pytest.approx(pth_record["score"], abs=1e-4)
        np.testing.assert_allclose(onnx_record["bbox"], pth_record["bbox"], atol=0.05)


def test_benchmark_command_times_each_batch_size_and_writes_benchmark_json(deploy_inputs, tmp_path, capsys):
    code, out, err = cli(capsys, "benchmark", "--skill", "rtdetr", "-e", str(deploy_inputs.spec),
                         f"results_dir={tmp_path}", f"benchmark.checkpoint={deploy_inputs.onnx}",
                         "benchmark.batch_sizes=[1,2]", "benchmark.warmup=1", "benchmark.iterations=3")
    assert code == 0, err
    report = json.loads((tmp_path / "benchmark" / "benchmark.json").read_text())
    assert report["runtime"] == "onnxruntime" and [r["batch_size"] for r in report["results"]] == [1, 2]
    for row in report["results"]:
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] and row["throughput"] > 0
        assert row["input_size"] == [INPUT, INPUT] and row["iterations"] == 3
    assert "p50 ms/img" in out and "onnxruntime" in out


def test_measure_latency_on_the_pytorch_predictor(deploy_inputs):
    row = measure_latency(load_predictor(deploy_inputs.checkpoint), batch_size=2, input_size=(INPUT, INPUT),
                          warmup=0, iterations=2)
    assert row["runtime"] == "pytorch" and row["batch_size"] == 2 and row["throughput"] > 0
    assert row["batch_p50_ms"] == pytest.approx(2 * row["p50_ms"])


@pytest.mark.parametrize("command, overrides, expected", [
    ("export", ["export.checkpoint={root}/missing.pth", "export.onnx_file=m.onnx"],
     "export.checkpoint: {root}/missing.pth: file not found"),
    ("export", ["export.checkpoint={checkpoint}", "export.onnx_file=m.onnx", "export.opset_version=15"],
     "export.opset_version: 15 is below 16"),
    ("export", ["export.checkpoint={checkpoint}", "export.onnx_file=m.etlt"], "the file must end in .onnx"),
    ("evaluate", ["evaluate.checkpoint={root}/model.xyz"], "unknown model file type"),
    ("benchmark", ["benchmark.checkpoint={root}/images/img_0.png"], "unknown model file type '.png'"),
    ("benchmark", ["benchmark.checkpoint={onnx}", "benchmark.batch_sizes=[0]"], "benchmark.batch_sizes"),
])
def test_bad_input_exits_2_with_one_line(deploy_inputs, tmp_path, capsys, command, overrides, expected):
    values = {"root": deploy_inputs.root, "checkpoint": deploy_inputs.checkpoint, "onnx": deploy_inputs.onnx}
    code, out, err = cli(capsys, command, "--skill", "rtdetr", "-e", str(deploy_inputs.spec),
                         f"results_dir={tmp_path}", *[o.format(**values) for o in overrides])
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected.format(**values) in err


def test_load_predictor_dispatches_on_the_suffix(deploy_inputs, tmp_path):
    assert load_predictor(deploy_inputs.checkpoint).runtime == "pytorch"
    assert load_predictor(deploy_inputs.onnx).runtime == "onnxruntime"
    with pytest.raises(UserError, match=r"model\.tflite: unknown model file type"):
        load_predictor(tmp_path / "model.tflite")
    not_ours = tmp_path / "plain.onnx"
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]), str(not_ours))
    with pytest.raises(UserError, match="no tao-automl metadata"):
        load_predictor(not_ours)
