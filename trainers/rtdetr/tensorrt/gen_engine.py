"""The ``gen_trt_engine`` flow, shared by the command and the sweep.

plan (reads and checks the spec and the ONNX file: works anywhere) ->
require TensorRT and a GPU -> build.  So bad input gets its own one-line
error even on a machine without a GPU, and a missing GPU or package is named.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from trainers.errors import UserError

from .availability import missing_message, missing_requirements, require_tensorrt
from .plan import EnginePlan, build_plan

Log = Callable[[str], None]
ENGINE_NAME = "model.engine"


def results_dir(cfg) -> Path:
    gen = cfg.gen_trt_engine
    return Path(gen.results_dir) if gen.results_dir else Path(cfg.results_dir or ".") / "gen_trt_engine"


def engine_path(cfg) -> Path:
    """``gen_trt_engine.trt_engine``, or ``results_dir/gen_trt_engine/model.engine`` when it is empty."""
    engine = cfg.gen_trt_engine.trt_engine
    return Path(engine).expanduser() if engine else results_dir(cfg) / ENGINE_NAME


def plan_from_spec(cfg) -> EnginePlan:
    """The EnginePlan of an ExperimentConfig (the spec's eval size and letterboxing fill what ONNX leaves open)."""
    aug = cfg.dataset.augmentation
    return build_plan(cfg.gen_trt_engine, engine_path(cfg), default_input_size=aug.eval_spatial_size,
                      preserve_aspect_ratio=bool(aug.preserve_aspect_ratio))


def gen_trt_engine(cfg, log: Log = print) -> Path:
    """Build the engine the spec describes; UserError on bad input or without GPU / TensorRT."""
    plan = plan_from_spec(cfg)
    for note in plan.notes:
        log(f"gen_trt_engine: {note}")
    require_tensorrt("gen_trt_engine", plan.gpu_id)
    from .builder import build_engine

    return build_engine(plan, log)


def build_engine_if_possible(onnx_file, engine_file, precision: str = "FP16", log: Log = print,
                             **tensorrt_settings) -> Optional[Path]:
    """For the sweep: build ``engine_file`` from ``onnx_file`` when a GPU and TensorRT exist.

    Returns the engine path, or None after logging one line saying what is
    missing.  Never raises for a missing GPU or package; bad input (a missing
    ONNX file, a bad precision) still raises UserError.  ``tensorrt_settings``:
    more ``gen_trt_engine.tensorrt.*`` values (e.g. ``max_batch_size=8``).
    """
    from ..config.deploy import GenTrtEngineConfig, TensorRTConfig

    gen = GenTrtEngineConfig(onnx_file=str(onnx_file), trt_engine=str(engine_file),
                             tensorrt=TensorRTConfig(data_type=str(precision).upper(), **tensorrt_settings))
    plan = build_plan(gen, Path(engine_file))
    missing = missing_requirements()
    if missing:
        log(missing_message("gen_trt_engine: skipped", missing))
        return None
    from .builder import build_engine

    try:
        return build_engine(plan, log)
    except UserError as error:  # e.g. the GPU cannot build this graph: the sweep goes on with its ONNX model
        log(f"gen_trt_engine: skipped: {error}")
        return None
