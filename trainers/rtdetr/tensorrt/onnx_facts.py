"""What the engine build needs to know about an exported ONNX file, read with ``onnx``.

The input (name, batch dimension fixed or dynamic, height and width), the opset,
the number of detections per image, and the class information the exporter
stored in ``metadata_props`` (optional: absent keys stay empty).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from trainers.errors import UserError

MIN_OPSET = 16   # GridSample (deformable attention) needs opset 16
RISKY_OPSETS = {20: "TensorRT 10.13 computes GridSample wrongly at opset 20 (NVIDIA/TensorRT#4646); "
                    "re-export at opset 17"}


@dataclass
class OnnxFacts:
    """The ONNX file's interface.  ``batch`` is None when the batch dimension is dynamic."""

    path: Path
    input_name: str
    batch: Optional[int]
    channels: int
    height: Optional[int]       # None: dynamic (the spec's size is used)
    width: Optional[int]
    opset: int
    output_names: List[str]
    num_select: Optional[int]
    metadata: Dict[str, str] = field(default_factory=dict)
    category_ids: List[int] = field(default_factory=list)
    class_names: List[str] = field(default_factory=list)

    @property
    def dynamic_batch(self) -> bool:
        return self.batch is None


def load_onnx(path: Path, key: str):
    """The ModelProto of ``path``; UserError naming ``key`` and the file when it is missing or not ONNX."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{key}: {path}: no such file (export one with tao-automl export)")
    try:
        return onnx.load(str(path))
    except Exception as error:  # protobuf raises its own DecodeError; any failure means "not an ONNX file"
        raise UserError(f"{key}: {path}: not a readable ONNX model ({type(error).__name__}: {error})") from None


def read_onnx_facts(path: Path, key: str = "gen_trt_engine.onnx_file", model=None) -> OnnxFacts:
    model = load_onnx(path, key) if model is None else model
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise UserError(f"{key}: {path}: expected one input (images [B,3,H,W]), found "
                        f"{len(inputs)}: {', '.join(v.name for v in inputs) or 'none'}")
    name, dims = inputs[0].name, _dims(inputs[0])
    if len(dims) != 4:
        raise UserError(f"{key}: {path}: input {name!r} has {len(dims)} dimensions; expected [B,3,H,W]")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise UserError(f"{key}: {path}: opset {opset}; TensorRT needs opset >= {MIN_OPSET} for GridSample "
                        f"(re-export with export.opset_version=17)")
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    outputs = [value.name for value in graph.output]
    facts = OnnxFacts(path=Path(path), input_name=name, batch=dims[0], channels=dims[1] or 3, height=dims[2],
                      width=dims[3], opset=opset, output_names=outputs, num_select=_num_select(graph, metadata),
                      metadata=metadata)
    facts.category_ids = [int(v) for v in _list_value(metadata.get("category_ids"))]
    facts.class_names = [str(v) for v in _list_value(metadata.get("class_names"))]
    return facts


def _dims(value) -> List[Optional[int]]:
    """Dimensions of a ValueInfo: ints when fixed, None when symbolic or unknown."""
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in shape.dim]


def _num_select(graph, metadata: Dict[str, str]) -> Optional[int]:
    """K of the outputs [B, K]: from metadata when stored, else the scores output's last fixed dimension."""
    if metadata.get("num_select", "").strip().isdigit():
        return int(metadata["num_select"])
    for value in graph.output:
        dims = _dims(value)
        if value.name == "scores" and len(dims) == 2 and dims[1]:
            return dims[1]
    return None


def _list_value(text: Optional[str]) -> List[Any]:
    """A list stored as JSON (``[3, 7]``, ``["cat", "dog"]``) or comma-separated text; [] when absent."""
    if not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return [part.strip() for part in text.split(",") if part.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def input_hw(facts: OnnxFacts, fallback: Optional[Tuple[int, int]], key: str) -> Tuple[int, int]:
    """(H, W) of the engine input: the ONNX file's, else ``fallback`` (the spec's size) when it is dynamic."""
    if facts.height and facts.width:
        return facts.height, facts.width
    if fallback:
        return int(fallback[0]), int(fallback[1])
    raise UserError(f"{key}: {facts.path}: input height/width are dynamic and no size is given; "
                    f"re-export at a fixed export.input_height x export.input_width")
