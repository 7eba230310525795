"""Execute an :class:`~.plan.EnginePlan` with the TensorRT Python API (TensorRT 10; 8.6 works too).

Kept thin on purpose: every decision is in the plan, which is tested without a
GPU.  This module only translates it:

- Builder -> network (explicit batch) -> OnnxParser (errors in one line);
- BuilderConfig: workspace pool limit, FP16 / INT8 flags, TF32 off, per-layer
  precision with OBEY_PRECISION_CONSTRAINTS, the batch optimisation profile,
  the timing cache (loaded, then saved back), the INT8 entropy calibrator with
  its own fixed-shape calibration profile;
- ``build_serialized_network`` -> the engine file and its ``.json`` sidecar,
  both written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from trainers.atomic_write import write_atomic, write_text_atomic
from trainers.errors import UserError

from .availability import require_tensorrt
from .calibrator import CalibrationBatches, make_entropy_calibrator, read_cache
from .plan import EnginePlan

Log = Callable[[str], None]
FLOAT_DTYPES = ("FLOAT", "HALF", "BF16")


def build_engine(plan: EnginePlan, log: Log = print) -> Path:
    """Build ``plan.engine_file`` (and ``<engine>.json``); returns the engine path."""
    trt = require_tensorrt("gen_trt_engine", plan.gpu_id)
    import torch

    torch.cuda.set_device(plan.gpu_id)  # the builder uses the current device
    logger = trt.Logger(trt.Logger.VERBOSE if plan.verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.onnx_file)):
        raise UserError(f"gen_trt_engine.onnx_file: {plan.onnx_file}: TensorRT cannot parse it: "
                        + "; ".join(_parser_error(parser.get_error(i)) for i in range(parser.num_errors)))

    config = builder.create_builder_config()
    if plan.workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.clear_flag(trt.BuilderFlag.TF32)
    if plan.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.int8:
        config.set_flag(trt.BuilderFlag.INT8)
    pinned = _apply_layer_precisions(trt, network, plan)
    if pinned:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log(f"gen_trt_engine: {pinned} TensorRT layers pinned to their plan precision "
            f"({len(plan.fp32_layers)} ONNX nodes kept FP32)")

    profile = builder.create_optimization_profile()
    profile.set_shape(plan.input_name, *plan.profile_shapes())
    config.add_optimization_profile(profile)
    if plan.int8:
        _set_calibrator(trt, builder, config, plan, log)

    cache = config.create_timing_cache(plan.timing_cache.read_bytes() if plan.timing_cache.is_file() else b"")
    if not config.set_timing_cache(cache, False):
        log(f"gen_trt_engine: {plan.timing_cache} is from another GPU or TensorRT version; starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), False)

    log(f"gen_trt_engine: building {plan.summary()} (this takes minutes)")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"gen_trt_engine: TensorRT could not build {plan.engine_file.name} from "
                        f"{plan.onnx_file.name} (set gen_trt_engine.verbose=true to see why)")
    write_atomic(plan.engine_file, lambda handle: handle.write(memoryview(serialized)))
    timing = config.get_timing_cache()
    if timing is not None:
        write_atomic(plan.timing_cache, lambda handle: handle.write(memoryview(timing.serialize())))
    write_text_atomic(plan.sidecar_file, json.dumps(plan.sidecar(), indent=2) + "\n")
    log(f"gen_trt_engine: wrote {plan.engine_file} ({plan.engine_file.stat().st_size / 2**20:.1f} MB) "
        f"and {plan.sidecar_file.name}")
    return plan.engine_file


def _network_flags(trt) -> int:
    """Explicit batch: the default (and the flag deprecated) from TensorRT 10, required before."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    major = int(str(trt.__version__).split(".")[0])
    return 1 << int(flag) if flag is not None and major < 10 else 0


def _parser_error(error) -> str:
    node = error.node_name() if hasattr(error, "node_name") else ""
    where = f" (node {node})" if node else ""
    return f"{error.desc()}{where}".replace("\n", " ")


def _onnx_node_of(layer) -> str:
    """The ONNX node a layer came from: its metadata ``[ONNX Layer: name | ...]`` (TensorRT >= 10), else its name."""
    metadata = getattr(layer, "metadata", "") or ""
    if metadata.startswith("[ONNX Layer: "):
        return metadata[len("[ONNX Layer: "):].rstrip("]").split(" | ")[0]
    return layer.name


def _apply_layer_precisions(trt, network, plan: EnginePlan) -> int:
    """Set precision and float output types of the layers the plan pins; returns how many were set.

    Layers whose outputs are not floating point (shapes, indices) keep their types.
    """
    types = {"FP32": trt.float32, "FP16": trt.float16, "INT8": trt.int8}
    count = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        wanted = plan.layer_precision(_onnx_node_of(layer))
        if wanted is None or layer.type == trt.LayerType.CONSTANT:
            continue
        float_outputs = [i for i in range(layer.num_outputs) if layer.get_output(i).dtype.name in FLOAT_DTYPES]
        if not float_outputs:
            continue
        layer.precision = types[wanted]
        for i in float_outputs:  # INT8 outputs are chosen by the calibrator's scales, not forced
            if wanted != "INT8":
                layer.set_output_type(i, types[wanted])
        count += 1
    return count


def _set_calibrator(trt, builder, config, plan: EnginePlan, log: Log) -> None:
    calibration = plan.calibration
    batches = None
    if read_cache(calibration.cache_file) is not None:
        log(f"gen_trt_engine: INT8 scales from the calibration cache {calibration.cache_file}")
    else:
        batches = CalibrationBatches(calibration.image_dirs, plan.input_chw[1:], calibration.batch_size,
                                     calibration.batches, calibration.preserve_aspect_ratio)
        for note in batches.notes:
            log(f"gen_trt_engine: {note}")
        log(f"gen_trt_engine: INT8 calibration over {len(batches)} batches of {batches.batch_size}; "
            f"cache -> {calibration.cache_file}")
    shape = plan.input_shape(calibration.batch_size)
    calibration_profile = builder.create_optimization_profile()
    calibration_profile.set_shape(plan.input_name, shape, shape, shape)
    config.set_calibration_profile(calibration_profile)
    config.int8_calibrator = make_entropy_calibrator(trt, batches, calibration.cache_file,
                                                     device=f"cuda:{plan.gpu_id}")
