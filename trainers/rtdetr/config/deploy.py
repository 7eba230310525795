"""``gen_trt_engine.*`` and ``quantize.*`` (NVIDIA TAO's keys).

gen_trt_engine has no packaged NVIDIA schema; its defaults come from TAO Core's
``RTGenTrtEngineExpConfig`` / ``TrtConfig`` / ``CalibrationConfig`` (research
report 2.9).  quantize comes from the packaged RT-DETR schemas.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from .actions import MISSING
from .fields import param, section


@dataclass
class CalibrationConfig:
    """INT8 calibration data."""

    cal_image_dir: List[str] = param([], automl_enabled=False, description="Folders of calibration images.")
    cal_cache_file: str = param("", description="The calibration cache file.")
    cal_batch_size: int = param(1, minimum=1, popular=True, description="The calibration batch size.")
    cal_batches: int = param(1, minimum=1, popular=True, description="The number of calibration batches.")


@dataclass
class TensorRTConfig:
    """TensorRT builder settings."""

    data_type: str = param("FP32", enum=["FP32", "FP16", "INT8"], description="The engine precision.")
    workspace_size: int = param(1024, minimum=0, description="The builder workspace, in MB.")
    min_batch_size: int = param(1, minimum=1, popular=True, description="The smallest batch of the optimisation profile.")
    opt_batch_size: int = param(1, minimum=1, popular=True, description="The batch the engine is tuned for.")
    max_batch_size: int = param(4, minimum=1, description="The largest batch of the optimisation profile.")
    layers_precision: List[str] = param([], automl_enabled=False, description="Per-layer precisions (name:precision).")
    calibration: CalibrationConfig = section(CalibrationConfig, description="INT8 calibration data.")


@dataclass
class GenTrtEngineConfig:
    """Build a TensorRT engine from the exported ONNX file."""

    results_dir: str = param("", description="Where the build writes its results.")
    gpu_id: int = param(0, minimum=0, popular=True, description="The GPU to build on.")
    onnx_file: str = param(MISSING, description="The ONNX file to build from.")
    trt_engine: str = param(MISSING, description="The engine file to write.")
    timing_cache: str = param("", description="A TensorRT timing cache file to read and update.")
    batch_size: int = param(-1, minimum=-1, popular=True, description="The batch size (-1: dynamic).")
    verbose: bool = param(False, description="Verbose TensorRT logging.")
    tensorrt: TensorRTConfig = section(TensorRTConfig, description="TensorRT builder settings.")


@dataclass
class QuantizeConfig:
    """Post-training quantization."""

    backend: str = param("torchao", enum=["modelopt.pytorch", "torchao", "modelopt.onnx"],
                         description="The quantization backend.")
    mode: str = param("weight_only_ptq", enum=["static_ptq", "weight_only_ptq"], description="The quantization mode.")
    algorithm: str = param("minmax", enum=["minmax", "max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq"],
                           description="The calibration algorithm.")
    layers: List[Dict[str, Any]] = param([], automl_enabled=False, description="Per-layer quantization settings.")
    skip_names: List[str] = param([], automl_enabled=False, description="Modules left unquantized.")
    model_path: str = param("", required=True, description="The checkpoint to quantize.")
    results_dir: str = param("", required=True, description="Where quantize writes its results.")
    backend_kwargs: Dict[str, Any] = param({}, automl_enabled=False, value_type="collection",
                                           description="Additional keyword arguments to pass to the backend.")
    device: str = param("cuda", pattern="^(cuda|cpu|trt|cuda:[0-9]+)$", description="The device to quantize on.")
