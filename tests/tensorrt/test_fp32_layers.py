"""Which nodes of a real exported RT-DETR graph stay FP32 in FP16 / INT8 engines."""
from __future__ import annotations

import onnx
import pytest

from trainers.rtdetr.tensorrt.fp32_layers import HEAVY_OPS, node_name, select_fp32_nodes


def nodes_by_op(model, op_type):
    return [node for node in model.graph.node if node.op_type == op_type]


@pytest.fixture(scope="module")
def exported(onnx_files):
    model = onnx.load(str(onnx_files.dynamic))
    return model, select_fp32_nodes(model)


@pytest.mark.parametrize("op_type, reason", [
    ("LayerNormalization", "layer_norm"), ("Softmax", "softmax"), ("GridSample", "grid_sample"),
    ("TopK", "top_k"), ("Log", "inverse_sigmoid"),
])
def test_known_fragile_ops_stay_fp32(exported, op_type, reason):
    model, selection = exported
    nodes = nodes_by_op(model, op_type)
    assert nodes, f"the tiny RT-DETR graph has no {op_type}"
    assert all(selection.reasons.get(node_name(n)) == reason for n in nodes)


def test_heavy_ops_keep_the_engine_precision(exported):
    model, selection = exported
    heavy = [node_name(n) for n in model.graph.node if n.op_type in HEAVY_OPS]
    assert len(heavy) > 50 and not set(heavy) & set(selection.names)


def test_box_and_score_sigmoids_stay_fp32_but_silu_activations_do_not(exported):
    model, selection = exported
    sigmoids = nodes_by_op(model, "Sigmoid")
    pinned = [n for n in sigmoids if node_name(n) in selection.reasons]
    silu = [n for n in sigmoids if node_name(n) not in selection.reasons]
    assert pinned and silu
    assert all("/act/" in node_name(n) for n in silu)  # the CCFF blocks' SiLU
    assert all("/act/" not in node_name(n) for n in pinned)


def test_reference_point_chain_and_postprocessing_tail_stay_fp32(exported):
    model, selection = exported
    # inverse_sigmoid = log(clamp(x) / clamp(1 - x)) between decoder layers
    for op_type in ("Clip", "Div"):
        decoder = [node_name(n) for n in nodes_by_op(model, op_type)
                   if "/decoder/decoder/" in node_name(n) and "/layers." not in node_name(n)]
        assert decoder and set(decoder) <= set(selection.names)
    # everything between the last heads and the three outputs
    tail = [node_name(n) for n in model.graph.node if node_name(n).startswith("/postprocessor/")
            and n.op_type in ("Sigmoid", "TopK", "GatherElements", "Split", "Concat", "Add")]  # float ops
    assert tail and set(tail) <= set(selection.names)
    producers = {out: node_name(n) for n in model.graph.node for out in n.output}
    assert producers["boxes"] in selection.names and producers["scores"] in selection.names


def test_only_float_nodes_are_listed_and_most_of_the_graph_keeps_fp16(exported):
    model, selection = exported
    by_name = {node_name(n): n for n in model.graph.node}
    assert not {by_name[name].op_type for name in selection.names} & {"Shape", "Constant", "Equal", "Range"}
    convs_and_matmuls = sum(n.op_type in HEAVY_OPS for n in model.graph.node)
    assert len(selection.names) < len(model.graph.node) / 2 and convs_and_matmuls > 0


@pytest.mark.slow  # one more export (about 2-5 s)
def test_decomposed_layer_norm_of_opset_16_stays_fp32(opset16_onnx):
    model = onnx.load(str(opset16_onnx))
    selection = select_fp32_nodes(model)
    assert not nodes_by_op(model, "LayerNormalization")
    norm_ops = [n for n in model.graph.node if n.op_type in ("ReduceMean", "Pow", "Sqrt")
                and "/norm" in node_name(n)]
    assert len(norm_ops) >= 9 * 3
    assert all(selection.reasons.get(node_name(n)) == "layer_norm" for n in norm_ops)
