"""``tao-automl gen_trt_engine`` on a machine without a GPU and without TensorRT (this one), and the sweep helper.

Checked here: one line and exit 2, bad input named before the missing GPU, the
default engine path, and that nothing needing TensorRT is attempted.
"""
from __future__ import annotations

import pytest

from automl.cli import main
from automl.spec import load_spec
from trainers.errors import UserError
from trainers.rtdetr.tensorrt import build_engine_if_possible, missing_requirements
from trainers.rtdetr.tensorrt.availability import NO_GPU, NO_PACKAGE, has_cuda_gpu, has_tensorrt_package
from trainers.rtdetr.tensorrt.gen_engine import engine_path

pytestmark = pytest.mark.skipif(has_cuda_gpu() and has_tensorrt_package(),
                                reason="checks the messages of a machine without GPU or TensorRT")


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def test_without_gpu_or_tensorrt_one_line_names_what_is_missing(capsys, spec, tmp_path):
    code, lines = run_cli(capsys, "gen_trt_engine", "--skill", "rtdetr", "-e", str(spec),
                          "gen_trt_engine.tensorrt.data_type=FP16")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("tao-automl gen_trt_engine: error: gen_trt_engine: ")
    assert ("no CUDA GPU found" in lines[0]) == (not has_cuda_gpu())
    assert ("tensorrt Python package is not installed" in lines[0]) == (not has_tensorrt_package())
    assert not (tmp_path / "results" / "gen_trt_engine" / "model.engine").exists()


def test_bad_onnx_file_is_named_before_the_missing_gpu(capsys, spec, tmp_path):
    code, lines = run_cli(capsys, "gen-trt-engine", "--skill", "rtdetr", "-e", str(spec),
                          f"gen_trt_engine.onnx_file={tmp_path / 'nowhere.onnx'}")
    assert code == 2 and len(lines) == 1
    assert "gen_trt_engine.onnx_file: " in lines[0] and "nowhere.onnx: no such file" in lines[0]
    assert "GPU" not in lines[0]


def test_bad_spec_value_is_named_before_the_missing_gpu(capsys, spec):
    code, lines = run_cli(capsys, "gen_trt_engine", "--skill", "rtdetr", "-e", str(spec),
                          "gen_trt_engine.tensorrt.min_batch_size=8")
    assert code == 2 and len(lines) == 1 and "gen_trt_engine.tensorrt.opt_batch_size: 1 is below" in lines[0]


def test_engine_defaults_to_results_dir_and_an_explicit_path_wins(spec, tmp_path):
    from automl.commands.gen_trt_engine import default_engine_override

    overrides = default_engine_override(str(spec), [])
    assert engine_path(load_spec("rtdetr", spec, overrides, "gen_trt_engine")) == \
        tmp_path / "results" / "gen_trt_engine" / "model.engine"
    explicit = [f"gen_trt_engine.trt_engine={tmp_path / 'x.engine'}"]
    assert default_engine_override(str(spec), explicit) == []
    assert engine_path(load_spec("rtdetr", spec, explicit, "gen_trt_engine")) == tmp_path / "x.engine"


def test_each_missing_requirement_has_its_own_message():
    assert missing_requirements(has_gpu=True, has_package=True) == []
    assert missing_requirements(has_gpu=False, has_package=True) == [NO_GPU]
    assert missing_requirements(has_gpu=True, has_package=False) == [NO_PACKAGE]
    assert "pip install tensorrt-cu12" in NO_PACKAGE and "GPU" in NO_GPU


def test_sweep_helper_returns_none_with_one_reason(onnx_files, tmp_path):
    lines = []
    assert build_engine_if_possible(onnx_files.dynamic, tmp_path / "best.engine", log=lines.append) is None
    assert len(lines) == 1 and lines[0].startswith("gen_trt_engine: skipped: ")
    assert not (tmp_path / "best.engine").exists()
    with pytest.raises(UserError, match="no such file"):  # bad input is still an error, not a skip
        build_engine_if_possible(tmp_path / "none.onnx", tmp_path / "best.engine", log=lines.append)


def test_engine_runtime_says_what_is_missing_instead_of_failing_on_import(tmp_path):
    from trainers.rtdetr.tensorrt.runtime import TensorRTPredictor

    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not really")
    with pytest.raises(UserError, match=r"^tensorrt runtime: .*(no CUDA GPU found|tensorrt Python package)"):
        TensorRTPredictor(engine)
