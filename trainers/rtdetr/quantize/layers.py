"""Which ONNX nodes get int8: NVIDIA's ``quantize.layers`` / ``skip_names`` mapped onto the exported graph.

TAO names PyTorch modules (``fnmatch`` patterns such as ``backbone.*``, or a
layer type such as ``Conv2d`` / ``Linear``).  The exporter names each ONNX node
after the module that emitted it (``/model/backbone/res_layers.0/.../conv/Conv``),
so a node's module is recovered from its name, and a pattern selects nodes.

Always kept in float (measured on the tiny preset, see benchmarks/bench_quantize.py):
the deformable-attention sampling (``sampling_offsets`` and ``attention_weights``
produce sub-pixel offsets and softmax inputs; int8 steps there move every sampled
point) and the post-processing tail (top-k over scores, box scaling).
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from trainers.errors import UserError

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
# module type names TAO's patterns may use -> the ONNX ops those modules export to
TYPE_OPS = {"Conv2d": ("Conv",), "Linear": ("MatMul", "Gemm")}
ALWAYS_FLOAT = ("*.cross_attn.sampling_offsets", "*.cross_attn.attention_weights", "postprocessor*")
SUPPORTED_DTYPES = ("int8",)
GPU_DTYPES = ("float8_e4m3fn", "fp8_e4m3fn", "float8_e5m2", "fp8_e5m2")


def node_module(node_name: str) -> str:
    """``/model/backbone/res_layers.0/blocks.0/branch2a/conv/Conv`` -> ``backbone.res_layers.0.blocks.0.branch2a.conv``.

    A module called twice gets ``_1`` appended to its scope by the exporter
    (``layers.0_1``); that suffix is dropped when it follows a numeric index.
    """
    parts = [p for p in node_name.split("/") if p][:-1]
    if parts and parts[0] == "model":
        parts = parts[1:]
    parts = [re.sub(r"^(.*\.\d+)_\d+$", r"\1", p) for p in parts]
    return ".".join(parts)


@dataclass
class NodePlan:
    """What quantize_static is told: the nodes to quantize (None: every supported one) and to leave alone."""

    nodes_to_quantize: Optional[List[str]]
    nodes_to_exclude: List[str]
    float_modules: List[str] = field(default_factory=list)

    def summary(self, total: int) -> str:
        chosen = total if self.nodes_to_quantize is None else len(self.nodes_to_quantize)
        return f"{chosen - len(self.nodes_to_exclude)} of {total} Conv/MatMul/Gemm nodes in int8"


def _dtype(section: Any, key: str) -> Optional[str]:
    if section is None:
        return None
    if isinstance(section, Mapping):
        value = section.get("dtype")
    else:
        value = getattr(section, "dtype", None)
    if value is None:
        return None
    value = str(value).lower()
    if value in GPU_DTYPES:
        raise UserError(f"{key}.dtype: {value} needs a GPU (TensorRT / ModelOpt); ONNX Runtime on the CPU "
                        f"quantizes to int8 only")
    if value not in SUPPORTED_DTYPES:
        raise UserError(f"{key}.dtype: {value!r} is not supported on the CPU; use int8")
    return value


def _matches(pattern: str, module: str, op_type: str) -> bool:
    if pattern in TYPE_OPS:
        return op_type in TYPE_OPS[pattern]
    return fnmatch.fnmatchcase(module, pattern) or module == pattern or module.startswith(pattern + ".")


def plan_nodes(nodes: Iterable, layers: Sequence[Any] = (), skip_names: Sequence[str] = (),
               keep_float: Sequence[str] = ALWAYS_FLOAT) -> NodePlan:
    """``nodes``: the graph's nodes (``.name``, ``.op_type``).  Rules:

    - no ``layers``: every Conv/MatMul/Gemm is quantized;
    - with ``layers``: only nodes whose module matches a layer with int8
      weights *and* activations (static int8 needs both; weight-only int8 has
      no CPU kernels in ONNX Runtime, so it is refused);
    - ``skip_names`` and ``keep_float`` patterns are excluded.
    """
    candidates = [n for n in nodes if n.op_type in QUANTIZED_OPS]
    selected: Optional[List[str]] = None
    if layers:
        selected = []
        for i, layer in enumerate(layers):
            get = (lambda k: layer.get(k)) if isinstance(layer, Mapping) else (lambda k: getattr(layer, k, None))
            pattern = get("module_name")
            if not pattern:
                raise UserError(f"quantize.layers.{i}.module_name: missing; give a module name or pattern "
                                f"(e.g. backbone.*, Conv2d)")
            weights = _dtype(get("weights"), f"quantize.layers.{i}.weights")
            activations = _dtype(get("activations"), f"quantize.layers.{i}.activations")
            if weights is None and activations is None:
                continue
            if (weights is None) != (activations is None):
                raise UserError(f"quantize.layers.{i}: ONNX Runtime's CPU int8 kernels need both weights and "
                                f"activations in int8 (got weights {weights}, activations {activations})")
            matched = [n.name for n in candidates if _matches(str(pattern), node_module(n.name), n.op_type)]
            if not matched:
                raise UserError(f"quantize.layers.{i}.module_name: {pattern!r} matches no Conv/Linear module of "
                                f"the exported model (e.g. backbone.*, encoder.*, decoder.*, Conv2d, Linear)")
            selected += [name for name in matched if name not in selected]
    excluded = [n.name for n in candidates
                if any(_matches(p, node_module(n.name), n.op_type) for p in list(skip_names) + list(keep_float))]
    if selected is not None:
        excluded = [name for name in excluded if name in selected]
    return NodePlan(selected, excluded, list(keep_float))


def quantizable_count(nodes: Iterable) -> int:
    return sum(1 for n in nodes if n.op_type in QUANTIZED_OPS)


def layer_dicts(layers: Sequence[Any]) -> List[Dict[str, Any]]:
    """Plain dicts for the results file."""
    return [dict(layer) if isinstance(layer, Mapping) else vars(layer) for layer in layers]
