"""The engine plan: everything TensorRT is told, decided and checked without TensorRT."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnx
import pytest

from trainers.errors import UserError
from trainers.rtdetr.config.deploy import CalibrationConfig, GenTrtEngineConfig, TensorRTConfig
from trainers.rtdetr.tensorrt.plan import MB, build_plan

from .conftest import CATEGORY_IDS, CLASS_NAMES, SIZE


def gen_config(onnx_file, batch_size=-1, calibration=None, **tensorrt):
    return GenTrtEngineConfig(onnx_file=str(onnx_file), trt_engine="unused", batch_size=batch_size,
                              tensorrt=TensorRTConfig(**tensorrt, calibration=calibration or CalibrationConfig()))


def test_dynamic_batch_onnx_takes_the_spec_profile_and_its_interface(onnx_files, tmp_path):
    plan = build_plan(gen_config(onnx_files.dynamic, min_batch_size=1, opt_batch_size=2, max_batch_size=8),
                      tmp_path / "m.engine")
    assert plan.dynamic_batch and plan.input_name == "images" and plan.opset == 17
    assert plan.profile_shapes() == ((1, 3, SIZE, SIZE), (2, 3, SIZE, SIZE), (8, 3, SIZE, SIZE))
    assert plan.num_select == 20 and plan.category_ids == CATEGORY_IDS and plan.class_names == CLASS_NAMES
    assert plan.timing_cache == tmp_path / "timing.cache"
    assert plan.workspace_bytes == 1024 * MB


def test_batch_size_fixes_the_profile(onnx_files, tmp_path):
    plan = build_plan(gen_config(onnx_files.dynamic, batch_size=4), tmp_path / "m.engine")
    assert (plan.profile.min, plan.profile.opt, plan.profile.max) == (4, 4, 4)


def test_fixed_batch_onnx_forces_its_batch_and_refuses_another(onnx_files, tmp_path):
    plan = build_plan(gen_config(onnx_files.fixed2, max_batch_size=16), tmp_path / "m.engine")
    assert not plan.dynamic_batch and plan.profile_shapes()[0] == plan.profile_shapes()[2] == (2, 3, SIZE, SIZE)
    assert any("no category_ids" in note for note in plan.notes)
    with pytest.raises(UserError, match=r"^gen_trt_engine\.batch_size: 3 but fixed2\.onnx .* fixed batch of 2"):
        build_plan(gen_config(onnx_files.fixed2, batch_size=3), tmp_path / "m.engine")


@pytest.mark.parametrize("settings, key", [
    (dict(min_batch_size=4, opt_batch_size=2, max_batch_size=8), "gen_trt_engine.tensorrt.opt_batch_size: 2"),
    (dict(min_batch_size=1, opt_batch_size=8, max_batch_size=4), "gen_trt_engine.tensorrt.max_batch_size: 4"),
    (dict(workspace_size=-1), "gen_trt_engine.tensorrt.workspace_size: -1"),
    (dict(data_type="FP8"), "gen_trt_engine.tensorrt.data_type: 'FP8'"),
])
def test_bad_settings_are_one_line_naming_the_key(onnx_files, tmp_path, settings, key):
    with pytest.raises(UserError) as error:
        build_plan(gen_config(onnx_files.dynamic, **settings), tmp_path / "m.engine")
    assert str(error.value).startswith(key) and "\n" not in str(error.value)


@pytest.mark.parametrize("onnx_file, message", [
    ("missing.onnx", "no such file"),
    ("garbage.onnx", "not a readable ONNX model"),
])
def test_bad_onnx_file_is_named(tmp_path, onnx_file, message):
    (tmp_path / "garbage.onnx").write_bytes(b"\x00not onnx at all" * 10)
    with pytest.raises(UserError, match=rf"^gen_trt_engine\.onnx_file: .*{onnx_file}: {message}"):
        build_plan(gen_config(tmp_path / onnx_file), tmp_path / "m.engine")


def test_opset_below_16_is_refused(onnx_files, tmp_path):
    model = onnx.load(str(onnx_files.dynamic))
    model.opset_import[0].version = 13
    old = tmp_path / "old.onnx"
    onnx.save(model, str(old))
    with pytest.raises(UserError, match=r"opset 13; TensorRT needs opset >= 16"):
        build_plan(gen_config(old), tmp_path / "m.engine")


def test_precision_flags_and_which_layers_stay_fp32(onnx_files, tmp_path):
    fp32 = build_plan(gen_config(onnx_files.dynamic, data_type="FP32"), tmp_path / "m.engine")
    assert (fp32.fp16, fp32.int8, fp32.tf32, fp32.obey_precision_constraints) == (False, False, False, False)
    assert fp32.fp32_layers == [] and fp32.layer_precision("/model/decoder/TopK") is None
    fp16 = build_plan(gen_config(onnx_files.dynamic, data_type="fp16"), tmp_path / "m.engine")
    assert (fp16.precision, fp16.fp16, fp16.int8, fp16.tf32) == ("FP16", True, False, False)
    assert fp16.obey_precision_constraints and fp16.fp32_layers
    assert all(fp16.layer_precision(name) == "FP32" for name in fp16.fp32_layers)


def test_int8_needs_calibration_images_or_a_cache(onnx_files, tmp_path):
    with pytest.raises(UserError, match=r"^gen_trt_engine\.tensorrt\.calibration\.cal_image_dir: no folder given"):
        build_plan(gen_config(onnx_files.dynamic, data_type="INT8"), tmp_path / "m.engine")
    with pytest.raises(UserError, match=r"^gen_trt_engine\.tensorrt\.calibration\.cal_image_dir: .*nowhere: no such"):
        build_plan(gen_config(onnx_files.dynamic, data_type="INT8",
                              calibration=CalibrationConfig(cal_image_dir=[str(tmp_path / "nowhere")])),
                   tmp_path / "m.engine")
    cache = tmp_path / "cal.cache"
    cache.write_bytes(b"TRT-int8-cache")
    plan = build_plan(gen_config(onnx_files.dynamic, data_type="INT8",
                                 calibration=CalibrationConfig(cal_cache_file=str(cache), cal_batch_size=4)),
                      tmp_path / "m.engine")
    assert plan.int8 and plan.fp16 and plan.calibration.cache_file == cache and plan.calibration.batch_size == 4
    images = tmp_path / "images"
    images.mkdir()
    default = build_plan(gen_config(onnx_files.dynamic, data_type="INT8",
                                    calibration=CalibrationConfig(cal_image_dir=[str(images)])), tmp_path / "m.engine")
    assert default.calibration.cache_file == tmp_path / "m.calibration.cache"
    with pytest.raises(UserError, match=r"^gen_trt_engine\.tensorrt\.calibration\.cal_batch_size: 4 but fixed2"):
        build_plan(gen_config(onnx_files.fixed2, data_type="INT8",
                              calibration=CalibrationConfig(cal_image_dir=[str(images)], cal_batch_size=4)),
                   tmp_path / "m.engine")


def test_layers_precision_patterns_must_match_and_fit_the_engine(onnx_files, tmp_path):
    plan = build_plan(gen_config(onnx_files.dynamic, data_type="FP16",
                                 layers_precision=["*/encoder/*/Conv:fp16", "/postprocessor/TopK:fp32"]),
                      tmp_path / "m.engine")
    convs = [name for name in plan.layer_precisions if name.endswith("/Conv")]
    assert convs and all(plan.layer_precisions[name] == "FP16" for name in convs)
    assert plan.layer_precision("/postprocessor/TopK") == "FP32"
    for entries, message in ((["nothing/like/this:fp32"], "matches no node of dynamic.onnx"),
                             (["*/Conv"], "is not 'layer_name:precision'"),
                             (["*/Conv:int8"], "asks for INT8 but gen_trt_engine.tensorrt.data_type is FP16")):
        with pytest.raises(UserError, match=rf"^gen_trt_engine\.tensorrt\.layers_precision: .*{message}"):
            build_plan(gen_config(onnx_files.dynamic, data_type="FP16", layers_precision=entries),
                       tmp_path / "m.engine")


def test_sidecar_lets_an_engine_alone_be_evaluated(onnx_files, tmp_path):
    plan = build_plan(gen_config(onnx_files.dynamic, data_type="FP16", max_batch_size=8), tmp_path / "m.engine")
    assert plan.sidecar_file == Path(str(tmp_path / "m.engine") + ".json")
    sidecar = json.loads(json.dumps(plan.sidecar()))
    assert sidecar["category_ids"] == CATEGORY_IDS and sidecar["class_names"] == CLASS_NAMES
    assert sidecar["num_select"] == 20 and sidecar["input_size"] == [SIZE, SIZE] and sidecar["precision"] == "FP16"
    assert sidecar["batch"] == {"min": 1, "opt": 1, "max": 8}
    assert "FP16 engine from dynamic.onnx (opset 17), input images 64x64, batch 1/1/8" in plan.summary()
    assert dataclasses.is_dataclass(plan)


def test_runtime_reads_the_sidecar_into_model_info(onnx_files, tmp_path):
    from trainers.rtdetr.tensorrt.runtime import model_info_from_sidecar, read_sidecar

    with pytest.raises(UserError, match=r"m\.engine: no m\.engine\.json beside it"):
        read_sidecar(tmp_path / "m.engine")
    plan = build_plan(gen_config(onnx_files.dynamic, batch_size=2), tmp_path / "m.engine")
    plan.sidecar_file.write_text(json.dumps(plan.sidecar()))
    info = model_info_from_sidecar(read_sidecar(plan.engine_file))
    assert (info.category_ids, info.class_names, info.num_select) == (CATEGORY_IDS, CLASS_NAMES, 20)
    assert info.input_size == (SIZE, SIZE) and info.fixed_batch == 2
    assert json.loads(plan.sidecar_file.read_text())["onnx_metadata"]["num_select"] == "20"
