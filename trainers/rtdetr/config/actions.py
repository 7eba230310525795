"""``evaluate.*``, ``inference.*``, ``export.*`` (NVIDIA TAO's keys) and ``benchmark.*`` (ours).

``"???"`` is Hydra's MISSING marker, kept from NVIDIA's templates: the command
that needs the value refuses to start while it is still ``"???"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

from .fields import param

MISSING = "???"


@dataclass
class EvaluateConfig:
    """Evaluate a checkpoint (.pth, .onnx or .engine) on dataset.test_data_sources."""

    num_gpus: int = param(1, minimum=1, popular=True, description="The number of GPUs.")
    gpu_ids: List[int] = param([0], automl_enabled=False, popular=True, description="The GPU ids to use.")
    num_nodes: int = param(1, minimum=1, popular=True, description="The number of nodes.")
    checkpoint: str = param(MISSING, description="The model to evaluate.")
    trt_engine: str = param("", description="A TensorRT engine to evaluate instead of the checkpoint.")
    results_dir: str = param("", description="Where evaluation writes its results.")
    input_width: Optional[int] = param(None, minimum=1, description="The input width (default: the training size).")
    input_height: Optional[int] = param(None, minimum=1, description="The input height (default: the training size).")
    batch_size: int = param(-1, minimum=-1, description="The batch size (-1: dataset.batch_size).")
    conf_threshold: float = param(0.0, description="Drop detections scored below this.")
    is_quantized: bool = param(False, description="The checkpoint is a quantized model.")


@dataclass
class InferenceConfig:
    """Run a checkpoint on dataset.infer_data_sources and draw the boxes."""

    num_gpus: int = param(1, minimum=1, popular=True, description="The number of GPUs.")
    gpu_ids: List[int] = param([0], automl_enabled=False, popular=True, description="The GPU ids to use.")
    num_nodes: int = param(1, minimum=1, popular=True, description="The number of nodes.")
    checkpoint: str = param(MISSING, description="The model to run.")
    trt_engine: str = param("", description="A TensorRT engine to run instead of the checkpoint.")
    results_dir: str = param("", description="Where inference writes images and labels.")
    color_map: Dict[str, str] = param({}, automl_enabled=False, value_type="collection",
                                      description="Class-wise dictionary with colors to render boxes.")
    conf_threshold: float = param(0.5, description="Draw detections scored at least this.")
    is_internal: bool = param(False, description="Write results in per-folder subdirectories.")
    input_width: int = param(640, minimum=32, description="The input width.")
    input_height: int = param(640, minimum=32, description="The input height.")
    outline_width: int = param(3, minimum=1, description="The width of the drawn box outlines.")
    batch_size: int = param(-1, minimum=-1, description="The batch size (-1: dataset.batch_size).")
    is_quantized: bool = param(False, description="The checkpoint is a quantized model.")


@dataclass
class ExportConfig:
    """Export a checkpoint to ONNX."""

    results_dir: str = param("", description="Where export writes its results.")
    gpu_id: int = param(0, description="The GPU to trace on.")
    checkpoint: str = param(MISSING, description="The checkpoint to export.")
    onnx_file: str = param(MISSING, description="The ONNX file to write.")
    on_cpu: bool = param(False, description="Trace on the CPU.")
    input_channel: int = param(3, minimum=1, enum=[1, 3], value_type="ordered_int",
                               description="The number of input channels.")
    # NVIDIA's dataclass metadata says 960x544, their working template says 640x640 (960x544
    # fails tracing); we default to what works.
    input_width: int = param(640, minimum=32, description="The input width.")
    input_height: int = param(640, minimum=32, description="The input height.")
    opset_version: int = param(17, minimum=1, description="The ONNX opset.")
    batch_size: int = param(-1, minimum=-1, description="The batch size (-1: dynamic).")
    verbose: bool = param(False, description="Print the traced graph.")
    format: str = param("onnx", enum=["onnx", "xdl"], description="The export format.")
    serialize_nvdsinfer: bool = param(False, description="Also write DeepStream's labels.txt and nvinfer config.")
    is_quantized: bool = param(False, description="The checkpoint is a quantized model.")
    fp16: bool = param(False, description="Also write <name>_fp16.onnx: float16 weights and arithmetic, "
                                          "float32 inputs and outputs (ours).")


@dataclass
class BenchmarkConfig:
    """Measure the latency of a model (ours)."""

    checkpoint: str = param(MISSING, description="The model to time (.pth, .onnx or .engine).")
    results_dir: str = param("", description="Where the benchmark writes its report.")
    batch_sizes: List[int] = param([1], automl_enabled=False, description="The batch sizes to time.")
    warmup: int = param(10, minimum=0, description="Untimed runs before timing.")
    iterations: int = param(50, minimum=1, description="Timed runs per batch size.")
