"""DeepStream files beside an exported ONNX: ``nvdsinfer_config.yaml`` (gst-nvinfer) and ``labels.txt``.

Follows the layout NVIDIA TAO writes for RT-DETR (``property`` and
``class-attrs-all`` groups, YAML as gst-nvinfer reads it since DeepStream 6.2):
RGB input scaled by 1/255 with no offsets (our preprocessing: pixels / 255),
``cluster-mode: 4`` (no clustering: DETRs need no NMS), ``network-type: 0``
(detector), ``network-mode: 2`` (FP16, TAO's choice), ``labels.txt`` one class
name a line in label order.

One difference from TAO, stated in the file: TAO's RT-DETR graph ends at the raw
``pred_logits``/``pred_boxes`` that DeepStream's bundled TAO parser
(``NvDsInferParseCustomDDETRTAO``) decodes; ours ends after the top-k, so its
outputs are ``labels``, ``boxes`` (x0, y0, x1, y1 in network-input pixels) and
``scores``, and nvinfer needs a parser for those.  The parser keys are written
commented out rather than pointing at a parser that would misread the tensors.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

from trainers.atomic_write import write_text_atomic
from trainers.rtdetr.runtime.predictor import ModelInfo

CONFIG_FILE = "nvdsinfer_config.yaml"
LABELS_FILE = "labels.txt"


def nvdsinfer_config_text(onnx_file: str, info: ModelInfo, labels_file: str = LABELS_FILE) -> str:
    """The gst-nvinfer YAML for an exported model (paths relative to the config's folder)."""
    height, width = info.input_size or (640, 640)
    batch = info.fixed_batch or 1
    k = info.num_select
    return f"""\
# gst-nvinfer config for {onnx_file}, written by tao-automl export.
# Outputs: labels [B,{k}] int64, boxes [B,{k},4] float32 (x0, y0, x1, y1 in network-input pixels),
# scores [B,{k}] float32, best first, no NMS.  DeepStream's bundled NvDsInferParseCustomDDETRTAO reads
# TAO's raw pred_logits/pred_boxes instead: set parse-bbox-func-name and custom-lib-path to a parser
# for these three tensors.
property:
  gpu-id: 0
  net-scale-factor: 0.00392156862745098
  offsets: 0;0;0
  model-color-format: 0
  onnx-file: {onnx_file}
  model-engine-file: {Path(onnx_file).stem}.onnx_b{batch}_gpu0_fp16.engine
  labelfile-path: {labels_file}
  infer-dims: 3;{height};{width}
  batch-size: {batch}
  network-mode: 2
  network-type: 0
  num-detected-classes: {len(info.category_ids)}
  cluster-mode: 4
  maintain-aspect-ratio: 0
  output-blob-names: labels;boxes;scores
  # parse-bbox-func-name: <a parser for labels;boxes;scores>
  # custom-lib-path: <its library>
class-attrs-all:
  pre-cluster-threshold: 0.5
  topk: {min(k, 100)}
"""


def serialize_nvdsinfer(onnx_path: os.PathLike | str, info: ModelInfo) -> List[Path]:
    """Write ``nvdsinfer_config.yaml`` and ``labels.txt`` beside ``onnx_path``; return their paths."""
    onnx_path = Path(onnx_path)
    labels = write_text_atomic(onnx_path.parent / LABELS_FILE, "\n".join(info.class_names) + "\n")
    config = write_text_atomic(onnx_path.parent / CONFIG_FILE, nvdsinfer_config_text(onnx_path.name, info))
    return [config, labels]
