"""``tao-automl gen_trt_engine``: a TensorRT engine (FP32 / FP16 / INT8) from an exported ONNX file.

    tao-automl gen_trt_engine --skill rtdetr -e spec.yaml gen_trt_engine.onnx_file=model.onnx \
        [gen_trt_engine.trt_engine=model.engine] [gen_trt_engine.tensorrt.data_type=FP16] [key=value ...]

The spec and the ONNX file are checked first (one line naming the key on any
machine), then the GPU and the tensorrt package (one line saying which is
missing), then the engine is built.  ``trt_engine`` defaults to
``results_dir/gen_trt_engine/model.engine``; ``<engine>.json`` is written beside it.
"""
from __future__ import annotations

import argparse
from typing import List, Sequence

from automl.commands import add_spec_arguments

ENGINE_KEY = "gen_trt_engine.trt_engine"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gen_trt_engine", aliases=["gen-trt-engine"], help="build a TensorRT engine from an ONNX export",
        description="Build a TensorRT engine (gen_trt_engine.tensorrt.data_type FP32, FP16 or INT8) from "
                    "gen_trt_engine.onnx_file, with a min/opt/max batch profile and a timing cache. Layers "
                    "TensorRT FP16 is known to break for RT-DETR stay FP32. Needs a CUDA GPU and the tensorrt "
                    "package.")
    add_spec_arguments(parser, "e.g. gen_trt_engine.onnx_file=model.onnx gen_trt_engine.tensorrt.data_type=FP16")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from automl.skills import find_skill
    from automl.spec import load_spec
    from trainers.rtdetr.tensorrt import gen_trt_engine

    overrides = default_engine_override(args.spec, args.overrides) + list(args.overrides)
    cfg = load_spec(find_skill(args.skill), args.spec, overrides, "gen_trt_engine")
    gen_trt_engine(cfg)
    return 0


def default_engine_override(spec_path: str, overrides: Sequence[str]) -> List[str]:
    """``trt_engine`` left unset ('???') means the default path; say so before the spec check refuses it."""
    from search_spaces.overrides import load_yaml_file

    if any(text.split("=", 1)[0].strip() == ENGINE_KEY for text in overrides):
        return []
    spec = load_yaml_file(spec_path) or {}
    section = spec.get("gen_trt_engine") if isinstance(spec, dict) else None
    value = section.get("trt_engine") if isinstance(section, dict) else None
    return [f"{ENGINE_KEY}=''"] if value in (None, "???") else []
