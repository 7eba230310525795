"""``tao-automl export`` from a spec: ``export.*`` -> :func:`export_onnx` arguments and the output path.

Where the file goes: ``export.onnx_file`` given as a bare file name (``model.onnx``) is written
into ``export.results_dir`` (default ``<results_dir>/export/``), TAO's results layout; a path with
a folder in it (``out/model.onnx``, ``./model.onnx``, ``/abs/model.onnx``) is used as given.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from trainers.errors import UserError

from .onnx_export import ExportReport, export_onnx

MISSING = "???"


def onnx_output_path(cfg) -> Path:
    """Where ``export.onnx_file`` goes (see the module docstring)."""
    name = str(cfg.export.onnx_file or "")
    if not name or name == MISSING:
        raise UserError("export.onnx_file: no output file given (e.g. export.onnx_file=model.onnx)")
    if "/" in name or os.sep in name:
        return Path(name)
    folder = Path(cfg.export.results_dir) if cfg.export.results_dir else Path(cfg.results_dir or ".") / "export"
    return folder / name


def run_export(cfg, log: Optional[Callable[[str], None]] = print) -> ExportReport:
    """Export ``export.checkpoint`` as the spec says; refuses the TAO options this exporter does not run."""
    settings = cfg.export
    checkpoint = str(settings.checkpoint or "")
    if not checkpoint or checkpoint == MISSING:
        raise UserError("export.checkpoint: no checkpoint given (e.g. export.checkpoint=model_best.pth)")
    if not Path(checkpoint).is_file():
        raise UserError(f"export.checkpoint: {checkpoint}: file not found")
    if settings.is_quantized:
        raise UserError("export.is_quantized: exporting quantized checkpoints is not supported")
    if int(settings.input_channel) != 3:
        raise UserError(f"export.input_channel: {settings.input_channel}: the model takes RGB images (use 3)")
    return export_onnx(checkpoint, onnx_output_path(cfg), input_height=int(settings.input_height),
                       input_width=int(settings.input_width), opset_version=int(settings.opset_version),
                       batch_size=int(settings.batch_size), fp16=bool(getattr(settings, "fp16", False)),
                       serialize_nvdsinfer=bool(settings.serialize_nvdsinfer), verbose=bool(settings.verbose),
                       log=log)
