"""``tao-automl export``: a checkpoint as ONNX with the post-processor inside, checked with ONNX Runtime.

    tao-automl export --skill rtdetr -e spec.yaml export.checkpoint=PATH export.onnx_file=OUT [key=value ...]

``OUT`` given as a bare name (``model.onnx``) lands in ``export.results_dir``
(default ``<results_dir>/export/``); a path with a folder is used as given.
The graph: input ``images`` float32 [B,3,H,W] (H x W = export.input_height x
export.input_width, pixels / 255), outputs ``labels`` int64 [B,K], ``boxes``
float32 [B,K,4] (x0, y0, x1, y1 in input pixels) and ``scores`` float32 [B,K],
K = model.num_select; B dynamic unless export.batch_size > 0.  Prints one line
with ONNX Runtime's largest difference from PyTorch; exits 1 when it is above
1e-3.  ``export.fp16=true`` also writes ``<name>_fp16.onnx``;
``export.serialize_nvdsinfer=true`` writes DeepStream's nvdsinfer_config.yaml
and labels.txt beside the file.
"""
from __future__ import annotations

import argparse

from automl.commands import add_spec_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX (post-processor inside), checked with ONNX Runtime",
        description="Export export.checkpoint to export.onnx_file (opset export.opset_version, input "
                    "export.input_height x export.input_width) with the post-processor inside; ONNX Runtime "
                    "runs the file and its outputs are compared with PyTorch's.")
    add_spec_arguments(parser, "e.g. export.checkpoint=model_best.pth export.onnx_file=model.onnx")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from automl.skills import find_skill
    from automl.spec import load_spec
    from trainers.rtdetr.export.action import run_export

    cfg = load_spec(find_skill(args.skill), args.spec, args.overrides, "export")
    report = run_export(cfg)
    return 0 if report.passed else 1
