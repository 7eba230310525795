"""Everything TensorRT is told, decided before TensorRT is imported: the EnginePlan.

``build_plan(gen_cfg, onnx_file, engine_file, ...)`` reads the ONNX file and
the ``gen_trt_engine`` section and checks them, so bad input fails with one
line naming the key on any machine; :mod:`.builder` then only executes the
plan.  Decisions:

- precision: FP32; FP16; INT8 also enables FP16 (layers without an INT8
  kernel fall back to FP16, not FP32, as TAO does).  TF32 is always off so
  that FP32 layers are really FP32 (D-FINE#44: TF32 alone breaks DETRs).
- FP16/INT8 engines keep :func:`.fp32_layers.select_fp32_nodes` in FP32 with
  precision constraints obeyed, plus the user's ``tensorrt.layers_precision``.
- the optimisation profile is over the batch only (H, W are baked into the
  export): ``batch_size`` > 0 fixes it, a fixed-batch ONNX forces its batch,
  otherwise min <= opt <= max from ``tensorrt.*``.
- INT8 calibrates at ``cal_batch_size`` with its own fixed profile.
"""
from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from trainers.errors import UserError, describe_value

from .fp32_layers import Fp32Selection, node_name, select_fp32_nodes
from .onnx_facts import RISKY_OPSETS, OnnxFacts, input_hw, load_onnx, read_onnx_facts

KEY = "gen_trt_engine"
TRT_KEY = f"{KEY}.tensorrt"
CAL_KEY = f"{TRT_KEY}.calibration"
PRECISIONS = ("FP32", "FP16", "INT8")
LAYER_PRECISIONS = {"fp32": "FP32", "float32": "FP32", "fp16": "FP16", "float16": "FP16", "half": "FP16",
                    "int8": "INT8"}
MB = 1 << 20


@dataclass(frozen=True)
class BatchProfile:
    min: int
    opt: int
    max: int


@dataclass
class CalibrationPlan:
    """INT8 calibration: images (may be empty when the cache file already exists) and the cache file."""

    image_dirs: List[str]
    batch_size: int
    batches: int
    cache_file: Path
    preserve_aspect_ratio: bool = False


@dataclass
class EnginePlan:
    onnx_file: Path
    engine_file: Path
    input_name: str
    input_chw: Tuple[int, int, int]
    opset: int
    dynamic_batch: bool
    precision: str                       # FP32 | FP16 | INT8
    profile: BatchProfile
    workspace_bytes: Optional[int]       # None: TensorRT's default (all device memory)
    timing_cache: Path
    fp32_layers: List[str] = field(default_factory=list)
    fp32_reasons: Dict[str, str] = field(default_factory=dict)
    layer_precisions: Dict[str, str] = field(default_factory=dict)   # from tensorrt.layers_precision
    calibration: Optional[CalibrationPlan] = None
    gpu_id: int = 0
    verbose: bool = False
    num_select: Optional[int] = None
    category_ids: List[int] = field(default_factory=list)
    class_names: List[str] = field(default_factory=list)
    onnx_metadata: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    @property
    def fp16(self) -> bool:
        return self.precision in ("FP16", "INT8")

    @property
    def int8(self) -> bool:
        return self.precision == "INT8"

    @property
    def tf32(self) -> bool:
        return False

    @property
    def obey_precision_constraints(self) -> bool:
        return bool(self.fp16 and (self.fp32_layers or self.layer_precisions))

    @property
    def sidecar_file(self) -> Path:
        return Path(str(self.engine_file) + ".json")

    def input_shape(self, batch: int) -> Tuple[int, int, int, int]:
        return (batch,) + tuple(self.input_chw)

    def profile_shapes(self) -> Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]:
        """(min, opt, max) input shapes of the optimisation profile."""
        return tuple(self.input_shape(b) for b in (self.profile.min, self.profile.opt, self.profile.max))

    def layer_precision(self, name: str) -> Optional[str]:
        """The precision node ``name`` must run in, or None for the engine's choice."""
        if name in self.layer_precisions:
            return self.layer_precisions[name]
        return "FP32" if self.fp16 and name in self.fp32_reasons else None

    def sidecar(self) -> dict:
        """What a runtime needs besides the engine (written next to it as ``<engine>.json``)."""
        _, height, width = self.input_chw
        return {"engine": self.engine_file.name, "onnx_file": str(self.onnx_file), "precision": self.precision,
                "input_name": self.input_name, "input_size": [height, width],
                "batch": asdict(self.profile), "dynamic_batch": self.dynamic_batch,
                "num_select": self.num_select, "category_ids": self.category_ids, "class_names": self.class_names,
                "fp32_layers": len(self.fp32_layers), "onnx_metadata": self.onnx_metadata}

    def summary(self) -> str:
        """One line for the log."""
        profile = self.profile
        batch = f"batch {profile.min}" if profile.min == profile.max else \
            f"batch {profile.min}/{profile.opt}/{profile.max} (min/opt/max)"
        kept = f", {len(self.fp32_layers)} layers kept FP32" if self.fp16 else ""
        workspace = f"{self.workspace_bytes // MB} MB workspace" if self.workspace_bytes else "default workspace"
        _, height, width = self.input_chw
        return (f"{self.precision} engine from {self.onnx_file.name} (opset {self.opset}), input "
                f"{self.input_name} {height}x{width}, {batch}, {workspace}{kept}")


def build_plan(gen, engine_file: Path, default_input_size: Optional[Sequence[int]] = None,
               preserve_aspect_ratio: bool = False) -> EnginePlan:
    """The EnginePlan of ``gen`` (a GenTrtEngineConfig) writing ``engine_file``.

    ``default_input_size`` (H, W): used only when the ONNX input's H/W are dynamic.
    """
    onnx_file = Path(gen.onnx_file).expanduser()
    model = load_onnx(onnx_file, f"{KEY}.onnx_file")
    facts = read_onnx_facts(onnx_file, f"{KEY}.onnx_file", model)
    trt = gen.tensorrt
    precision = str(trt.data_type).upper()
    if precision not in PRECISIONS:
        raise UserError(f"{TRT_KEY}.data_type: {describe_value(trt.data_type)} is not one of {', '.join(PRECISIONS)}")
    height, width = input_hw(facts, default_input_size, f"{KEY}.onnx_file")
    engine_file = Path(engine_file).expanduser()
    plan = EnginePlan(
        onnx_file=onnx_file, engine_file=engine_file, input_name=facts.input_name,
        input_chw=(facts.channels, height, width), opset=facts.opset, dynamic_batch=facts.dynamic_batch,
        precision=precision, profile=batch_profile(gen, facts),
        workspace_bytes=_workspace_bytes(trt.workspace_size),
        timing_cache=Path(gen.timing_cache).expanduser() if gen.timing_cache else engine_file.parent / "timing.cache",
        gpu_id=int(gen.gpu_id), verbose=bool(gen.verbose), num_select=facts.num_select,
        category_ids=facts.category_ids, class_names=facts.class_names, onnx_metadata=facts.metadata)
    if facts.opset in RISKY_OPSETS:
        plan.notes.append(f"warning: opset {facts.opset}: {RISKY_OPSETS[facts.opset]}")
    if not facts.category_ids:
        plan.notes.append(f"{onnx_file.name} stores no category_ids; the engine's labels stay contiguous")
    if plan.fp16:
        selection: Fp32Selection = select_fp32_nodes(model)
        plan.fp32_layers, plan.fp32_reasons = selection.names, selection.reasons
    plan.layer_precisions = parse_layer_precisions(trt.layers_precision, [node_name(n) for n in model.graph.node],
                                                   precision, onnx_file.name)
    if plan.int8:
        plan.calibration = calibration_plan(trt.calibration, plan, facts, preserve_aspect_ratio)
    return plan


def batch_profile(gen, facts: OnnxFacts) -> BatchProfile:
    """min/opt/max batch, checked against each other and against a fixed-batch ONNX file."""
    trt = gen.tensorrt
    asked = BatchProfile(int(trt.min_batch_size), int(trt.opt_batch_size), int(trt.max_batch_size))
    batch_size = int(gen.batch_size)
    if batch_size == 0 or batch_size < -1:
        raise UserError(f"{KEY}.batch_size: {batch_size}; use -1 (dynamic batch) or a batch of at least 1")
    if not facts.dynamic_batch:
        if batch_size not in (-1, facts.batch):
            raise UserError(f"{KEY}.batch_size: {batch_size} but {facts.path.name} was exported with a fixed "
                            f"batch of {facts.batch}; set {KEY}.batch_size={facts.batch} or re-export with a "
                            f"dynamic batch")
        return BatchProfile(facts.batch, facts.batch, facts.batch)
    if batch_size > 0:
        return BatchProfile(batch_size, batch_size, batch_size)
    for name in ("min", "opt", "max"):
        if getattr(asked, name) < 1:
            raise UserError(f"{TRT_KEY}.{name}_batch_size: {getattr(asked, name)}; must be at least 1")
    if asked.opt < asked.min:
        raise UserError(f"{TRT_KEY}.opt_batch_size: {asked.opt} is below min_batch_size {asked.min}; "
                        f"need min_batch_size <= opt_batch_size <= max_batch_size")
    if asked.max < asked.opt:
        raise UserError(f"{TRT_KEY}.max_batch_size: {asked.max} is below opt_batch_size {asked.opt}; "
                        f"need min_batch_size <= opt_batch_size <= max_batch_size")
    return asked


def _workspace_bytes(megabytes) -> Optional[int]:
    megabytes = int(megabytes)
    if megabytes < 0:
        raise UserError(f"{TRT_KEY}.workspace_size: {megabytes}; give MB >= 0 (0: TensorRT's default)")
    return megabytes * MB if megabytes else None


def parse_layer_precisions(entries: Sequence[str], node_names: Sequence[str], precision: str,
                           onnx_name: str) -> Dict[str, str]:
    """``["name:fp32", "*/norm*/*:fp32"]`` -> {node name: FP32|FP16|INT8}; names may be fnmatch patterns.

    Each entry must match a node; a precision the engine does not enable is refused.
    """
    key = f"{TRT_KEY}.layers_precision"
    result: Dict[str, str] = {}
    enabled = {"FP32": {"FP32"}, "FP16": {"FP32", "FP16"}, "INT8": {"FP32", "FP16", "INT8"}}[precision]
    for entry in entries or []:
        pattern, sep, wanted = str(entry).rpartition(":")
        layer_precision = LAYER_PRECISIONS.get(wanted.strip().lower())
        if not sep or not pattern or layer_precision is None:
            raise UserError(f"{key}: {describe_value(entry)} is not 'layer_name:precision' "
                            f"(precision fp32, fp16 or int8)")
        if layer_precision not in enabled:
            raise UserError(f"{key}: {entry!r} asks for {layer_precision} but {TRT_KEY}.data_type is {precision}")
        matched = [n for n in node_names if n == pattern or fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise UserError(f"{key}: {entry!r} matches no node of {onnx_name} (names look like "
                            f"{node_names[len(node_names) // 2]!r}; wildcards * and ? work)")
        result.update({name: layer_precision for name in matched})
    return result


def calibration_plan(cal, plan: EnginePlan, facts: OnnxFacts, preserve_aspect_ratio: bool) -> CalibrationPlan:
    """INT8 calibration settings; images are needed unless the cache file exists already."""
    image_dirs = [str(d) for d in (cal.cal_image_dir or []) if str(d).strip()]
    cache_file = Path(cal.cal_cache_file).expanduser() if cal.cal_cache_file else \
        plan.engine_file.with_name(plan.engine_file.stem + ".calibration.cache")
    batch_size, batches = int(cal.cal_batch_size), int(cal.cal_batches)
    if batch_size < 1 or batches < 1:
        which = "cal_batch_size" if batch_size < 1 else "cal_batches"
        raise UserError(f"{CAL_KEY}.{which}: {min(batch_size, batches)}; must be at least 1")
    if not image_dirs and not cache_file.is_file():
        raise UserError(f"{CAL_KEY}.cal_image_dir: no folder given and no calibration cache at {cache_file}; "
                        f"INT8 needs calibration images (a few hundred from the training set)")
    for image_dir in image_dirs:
        if not Path(image_dir).expanduser().exists():
            raise UserError(f"{CAL_KEY}.cal_image_dir: {image_dir}: no such folder")
    if not facts.dynamic_batch and batch_size != facts.batch:
        raise UserError(f"{CAL_KEY}.cal_batch_size: {batch_size} but {facts.path.name} has a fixed batch of "
                        f"{facts.batch}; set cal_batch_size={facts.batch}")
    return CalibrationPlan(image_dirs, batch_size, batches, cache_file, preserve_aspect_ratio)
