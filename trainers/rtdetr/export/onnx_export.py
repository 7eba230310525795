"""Export a checkpoint to ONNX with the post-processor inside, then prove the file with ONNX Runtime.

The graph (see runtime/predictor.py for the contract):

- input ``images``: float32 ``[B, 3, H, W]``, pixels / 255 (no mean/std), H x W fixed at export;
- outputs ``labels`` int64 ``[B, K]``, ``boxes`` float32 ``[B, K, 4]`` (x0, y0, x1, y1 in input
  pixels), ``scores`` float32 ``[B, K]``; K = ``num_select``, best first, no NMS;
- B dynamic (``batch_size=-1``) or fixed.

Why it is done this way:

- the TorchScript exporter is asked for explicitly (``dynamo=False``): since torch 2.9 a bare
  ``torch.onnx.export`` runs the dynamo exporter and silently writes opset 18;
- opset >= 16: GridSample (deformable attention) does not exist below it; TensorRT computes
  GridSample wrongly at opset 20 (NVIDIA/TensorRT#4646), so 20 only comes with a warning;
- the model is fused (RepVGG, BatchNorm) first: the same outputs, fewer nodes;
- H x W is fixed because the anchors and the AIFI position embedding depend on it (they become
  constants of the graph);
- classes, top-k and input size go into ``metadata_props`` so the .onnx alone can be evaluated;
- after every export ONNX Runtime runs the file on a batch and is compared with the PyTorch model
  the file came from (the checkpoint before fusion).
"""
from __future__ import annotations

import copy
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from trainers.atomic_write import write_atomic
from trainers.errors import UserError
from trainers.rtdetr.checkpoint import load_checkpoint
from trainers.rtdetr.load import model_from_checkpoint
from trainers.rtdetr.model import SIZE_MULTIPLE
from trainers.rtdetr.runtime.predictor import ModelInfo
from trainers.rtdetr.runtime.pytorch import DeployModel, checkpoint_info

from .compare import max_abs_difference
from .metadata import info_to_props

Log = Optional[Callable[[str], None]]
INPUT_NAMES = ["images"]
OUTPUT_NAMES = ["labels", "boxes", "scores"]
MIN_OPSET = 16
# TorchScript exporter's ceiling; the check reads it from torch when available.
MAX_OPSET = 20
TOLERANCE = 1e-3
FP16_TOLERANCE = 1e-2


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how close ONNX Runtime came to PyTorch.

    ``max_abs_diff``: the largest difference in a score or a box coordinate (boxes in units of the
    input size) between ONNX Runtime and PyTorch on a batch, matched as sets (see compare.py).
    """

    onnx_file: Path
    opset_version: int
    input_size: Tuple[int, int]
    batch_size: int
    num_select: int
    max_abs_diff: float
    tolerance: float = TOLERANCE
    seconds: float = 0.0
    fp16_file: Optional[Path] = None
    fp16_max_abs_diff: Optional[float] = None
    extra_files: List[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """ONNX Runtime agrees with PyTorch within the tolerance."""
        return self.max_abs_diff <= self.tolerance

    def line(self) -> str:
        batch = "B" if self.batch_size < 0 else str(self.batch_size)
        height, width = self.input_size
        verdict = "ok" if self.passed else "FAILED"
        text = (f"export: {self.onnx_file} (opset {self.opset_version}, images [{batch},3,{height},{width}] -> "
                f"labels [{batch},{self.num_select}], boxes [{batch},{self.num_select},4], "
                f"scores [{batch},{self.num_select}]); ONNX Runtime vs PyTorch max |diff| {self.max_abs_diff:.1e} "
                f"(<= {self.tolerance:.0e}: {verdict})")
        if self.fp16_file is not None:
            text += f"; fp16 {self.fp16_file.name} max |diff| {self.fp16_max_abs_diff:.1e}"
        return text + f" in {self.seconds:.1f}s"


def export_onnx(checkpoint_path: os.PathLike | str, onnx_path: os.PathLike | str, *, input_height: int = 640,
                input_width: int = 640, opset_version: int = 17, batch_size: int = -1, fp16: bool = False,
                serialize_nvdsinfer: bool = False, verbose: bool = False, log: Log = print) -> ExportReport:
    """Write ``onnx_path`` (and, with ``fp16``, ``<stem>_fp16.onnx`` beside it) from a checkpoint.

    ``batch_size`` -1 makes the batch dimension dynamic.  ``serialize_nvdsinfer`` also writes
    DeepStream's ``nvdsinfer_config.yaml`` and ``labels.txt`` beside the file.  Raises UserError for
    bad arguments or a checkpoint that cannot be exported; a disagreement with ONNX Runtime is not
    raised but reported (``report.passed`` False, "FAILED" in ``report.line()``).
    """
    started = time.perf_counter()
    onnx_path = Path(onnx_path)
    _check_arguments(onnx_path, input_height, input_width, opset_version, batch_size)
    if opset_version >= 20 and log is not None:
        log(f"warning: export.opset_version {opset_version}: TensorRT computes GridSample wrongly at opset 20 "
            f"(NVIDIA/TensorRT#4646); 17 is the safe choice")
    payload = load_checkpoint(checkpoint_path, map_location="cpu")
    reference = model_from_checkpoint(payload, checkpoint_path).eval()
    size = (int(input_height), int(input_width))
    info = checkpoint_info(payload, reference)
    info = ModelInfo(category_ids=info.category_ids, class_names=info.class_names, num_select=info.num_select,
                     input_size=size, fixed_batch=batch_size if batch_size > 0 else None,
                     extra={"source_checkpoint": Path(checkpoint_path).name})
    deploy = DeployModel(copy.deepcopy(reference).fuse_for_deploy(), info.num_select, size).eval()

    sample_batch = batch_size if batch_size > 0 else 2
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(sample_batch, 3, *size, generator=generator)
    model_proto = _trace(deploy, images, opset_version, dynamic_batch=batch_size < 0, verbose=verbose)
    _add_metadata(model_proto, info)
    _check(model_proto, onnx_path)
    write_atomic(onnx_path, lambda handle: handle.write(model_proto.SerializeToString()))

    with torch.no_grad():
        expected = [t.numpy() for t in DeployModel(reference, info.num_select, size)(images)]
    max_diff = max_abs_difference(_run_onnxruntime(onnx_path, images.numpy()), expected, size, TOLERANCE)
    report = ExportReport(onnx_file=onnx_path, opset_version=opset_version, input_size=size, batch_size=batch_size,
                          num_select=info.num_select, max_abs_diff=max_diff)
    if fp16:
        from .fp16 import convert_to_fp16

        report.fp16_file = onnx_path.with_name(f"{onnx_path.stem}_fp16.onnx")
        fp16_proto = convert_to_fp16(model_proto)
        write_atomic(report.fp16_file, lambda handle: handle.write(fp16_proto.SerializeToString()))
        report.fp16_max_abs_diff = max_abs_difference(_run_onnxruntime(report.fp16_file, images.numpy()), expected,
                                                      size, FP16_TOLERANCE)
        report.extra_files.append(report.fp16_file)
    if serialize_nvdsinfer:
        from .nvdsinfer import serialize_nvdsinfer as write_nvdsinfer

        report.extra_files += write_nvdsinfer(onnx_path, info)
    report.seconds = time.perf_counter() - started
    if log is not None:
        log(report.line())
    return report


def _check_arguments(onnx_path: Path, height: int, width: int, opset: int, batch_size: int) -> None:
    if onnx_path.suffix.lower() != ".onnx":
        raise UserError(f"export.onnx_file: {onnx_path}: the file must end in .onnx")
    if opset < MIN_OPSET:
        raise UserError(f"export.opset_version: {opset} is below {MIN_OPSET}; RT-DETR's deformable attention "
                        f"needs GridSample, which ONNX has from opset {MIN_OPSET} (use 17)")
    ceiling = _max_opset()
    if opset > ceiling:
        raise UserError(f"export.opset_version: {opset} is above {ceiling}, the highest this exporter writes "
                        f"(use 17)")
    for key, value in (("input_height", height), ("input_width", width)):
        if int(value) <= 0 or int(value) % SIZE_MULTIPLE:
            raise UserError(f"export.{key}: {value} is not a positive multiple of {SIZE_MULTIPLE} (RT-DETR's "
                            f"coarsest feature map is stride {SIZE_MULTIPLE})")
    if batch_size == 0 or batch_size < -1:
        raise UserError(f"export.batch_size: {batch_size}: use -1 for a dynamic batch or a positive batch size")


def _max_opset() -> int:
    try:
        from torch.onnx import _constants

        return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", MAX_OPSET))
    except ImportError:
        return MAX_OPSET


def _trace(deploy: DeployModel, images: torch.Tensor, opset: int, dynamic_batch: bool, verbose: bool):
    """The ONNX ModelProto of ``deploy`` traced on ``images``."""
    import onnx

    axes = {name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES} if dynamic_batch else None
    with tempfile.TemporaryDirectory(prefix="tao-automl-export-") as folder:
        traced = Path(folder) / "model.onnx"
        # The tracer warns about every shape read as a Python int: intended here, H x W are fixed.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(deploy, (images,), str(traced), dynamo=False, opset_version=opset,
                              input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, dynamic_axes=axes,
                              do_constant_folding=True, verbose=verbose)
        return onnx.load(str(traced))


def _add_metadata(model_proto, info: ModelInfo) -> None:
    model_proto.producer_name = "tao-automl"
    del model_proto.metadata_props[:]
    for key, value in info_to_props(info).items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value


def _check(model_proto, onnx_path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(model_proto, full_check=True)
    except onnx.checker.ValidationError as error:
        raise RuntimeError(f"{onnx_path}: the exported graph fails onnx.checker: "
                           f"{str(error).strip().splitlines()[0]}") from error


def _run_onnxruntime(path: Path, images: np.ndarray):
    from trainers.rtdetr.runtime.onnxruntime import OnnxRuntimePredictor

    predictor = OnnxRuntimePredictor(str(path))
    try:
        return predictor.predict(images)
    finally:
        predictor.close()
