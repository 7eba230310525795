"""TensorRT engines for RT-DETR: plan (no TensorRT needed), build, run.

Importing this package never imports ``tensorrt``; only building
(:mod:`.builder`) and running (:mod:`.runtime`) do, after
:func:`.availability.require_tensorrt` has checked the GPU and the package.
"""
from .availability import missing_requirements, require_tensorrt
from .gen_engine import build_engine_if_possible, gen_trt_engine
from .plan import EnginePlan, build_plan

__all__ = ["EnginePlan", "build_engine_if_possible", "build_plan", "gen_trt_engine", "missing_requirements",
           "require_tensorrt"]
