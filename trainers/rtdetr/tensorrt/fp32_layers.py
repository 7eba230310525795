"""Which ONNX nodes of an RT-DETR graph stay FP32 in FP16 / INT8 engines.

TensorRT FP16 is known to break RT-DETR (duplicate boxes, all labels 0, mAP
collapse: lyuwenyu/RT-DETR#104 and #222, NVIDIA/TensorRT#3652, D-FINE#44;
research report rtdetr_model.md section 6).  The culprits are reductions and
ranges FP16 cannot hold, not the convolutions and matrix products that make
FP16 fast.  So the rule is: the heavy ops (Conv, MatMul, Gemm) keep the
engine's precision, and these stay FP32:

- ``layer_norm``: LayerNormalization (opset >= 17) or its decomposed form
  (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add at opset 16);
- ``softmax``: attention weights (self-attention and deformable attention);
- ``grid_sample``: the deformable attention's sampling;
- ``top_k``: query selection and the final top-k;
- ``inverse_sigmoid``: the Log of ``log(x / (1 - x))`` on reference points;
- ``sigmoid``: every Sigmoid that is not a SiLU activation (``x * sigmoid(x)``
  in the CNN), i.e. box and score sigmoids;
- ``postprocess``: the nodes producing the graph outputs;
- ``around``: the light element-wise nodes feeding any of the above, followed
  back until a heavy op: the residual stream into each LayerNorm, the
  sampling-location arithmetic into GridSample, the reference-point chain
  (sigmoid -> clamp -> divide -> log -> add) across decoder layers, and the
  box conversion and scaling of the postprocessor.

Only nodes with a floating-point output are listed (shape and index
arithmetic has no precision to pin).  Nodes are matched by structure, not by
name, so any wrapper module names work; names are what TensorRT's ONNX parser
gives its layers (the node name, or its first output when unnamed).
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Set

HEAVY_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum"}
FLOAT_TYPES = {1, 10, 11, 16}   # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
SEED_OPS = {"LayerNormalization": "layer_norm", "Softmax": "softmax", "GridSample": "grid_sample",
            "TopK": "top_k", "Log": "inverse_sigmoid"}


def node_name(node) -> str:
    """The layer name TensorRT's ONNX parser uses: the node's name, else its first output's."""
    return node.name or (node.output[0] if node.output else "")


@dataclass
class Fp32Selection:
    """Node names to keep FP32, in graph order, and why each was chosen (rule name)."""

    names: List[str] = field(default_factory=list)
    reasons: Dict[str, str] = field(default_factory=dict)

    def by_reason(self) -> Dict[str, int]:
        counts: Dict[str, int] = defaultdict(int)
        for name in self.names:
            counts[self.reasons[name]] += 1
        return dict(counts)


def select_fp32_nodes(model) -> Fp32Selection:
    """The FP32 nodes of ``model`` (an onnx ModelProto), see the module docstring for the rules."""
    graph = model.graph
    nodes = list(graph.node)
    float_tensors = _float_tensors(model)
    producer = {out: node for node in nodes for out in node.output}
    consumers: Dict[str, List] = defaultdict(list)
    for node in nodes:
        for name in node.input:
            consumers[name].append(node)

    def computes_float(node) -> bool:
        return any(out in float_tensors for out in node.output)

    reasons: Dict[int, str] = {}
    for node in nodes:
        rule = SEED_OPS.get(node.op_type)
        if rule is None and node.op_type == "Sigmoid" and not _is_silu(node, consumers):
            rule = "sigmoid"
        if rule:
            reasons[id(node)] = rule
    for group in _decomposed_layer_norms(nodes, producer, consumers):
        for node in group:
            reasons[id(node)] = "layer_norm"
    for output in graph.output:
        if output.name in producer:
            reasons.setdefault(id(producer[output.name]), "postprocess")

    # Follow float inputs back from every seed through light ops; stop at heavy ops.
    queue = deque(node for node in nodes if id(node) in reasons)
    while queue:
        node = queue.popleft()
        for name in node.input:
            source = producer.get(name)
            if source is None or name not in float_tensors or source.op_type in HEAVY_OPS:
                continue
            if id(source) not in reasons:
                reasons[id(source)] = "around"
                queue.append(source)

    selection = Fp32Selection()
    for node in nodes:
        if id(node) in reasons and computes_float(node) and node.op_type not in ("Constant", "Identity"):
            name = node_name(node)
            selection.names.append(name)
            selection.reasons[name] = reasons[id(node)]
    return selection


def _float_tensors(model) -> Set[str]:
    """Names of the tensors with a floating-point type (from ONNX shape inference)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference can fail on exotic graphs; fall back to the declared types
        inferred = model
    graph = inferred.graph
    values = list(graph.value_info) + list(graph.input) + list(graph.output)
    names = {v.name for v in values if v.type.tensor_type.elem_type in FLOAT_TYPES}
    names |= {init.name for init in graph.initializer if init.data_type in FLOAT_TYPES}
    for node in graph.node:  # Constant nodes carry their type in the attribute
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type in FLOAT_TYPES:
                    names.update(node.output)
    return names


def _is_silu(sigmoid, consumers) -> bool:
    """A SiLU activation: ``Mul(x, Sigmoid(x))`` (CNN blocks; harmless in FP16)."""
    source = sigmoid.input[0]
    return any(c.op_type == "Mul" and source in c.input for c in consumers[sigmoid.output[0]])


def _decomposed_layer_norms(nodes: Iterable, producer, consumers) -> List[List]:
    """LayerNorm as opset 16 exports it: mean = ReduceMean(x); d = Sub(x, mean);
    Div(d, Sqrt(Add(ReduceMean(Pow(d, 2)), eps))), then optionally Mul(gamma) and Add(beta)."""
    groups = []
    for mean in nodes:
        if mean.op_type != "ReduceMean":
            continue
        x = mean.input[0]
        subs = [c for c in consumers[mean.output[0]] if c.op_type == "Sub" and x in c.input]
        for sub in subs:
            pows = [c for c in consumers[sub.output[0]] if c.op_type == "Pow"]
            divs = [c for c in consumers[sub.output[0]] if c.op_type == "Div"]
            if not pows or not divs:
                continue
            group = [mean, sub, pows[0], divs[0]]
            chain = producer.get(divs[0].input[1])
            while chain is not None and chain.op_type in ("Sqrt", "Add", "ReduceMean") and chain not in group:
                group.append(chain)
                chain = producer.get(chain.input[0])
            tail = divs[0]
            for op in ("Mul", "Add"):
                follow = [c for c in consumers[tail.output[0]] if c.op_type == op]
                if len(consumers[tail.output[0]]) != 1 or not follow:
                    break
                tail = follow[0]
                group.append(tail)
            groups.append(group)
    return groups
