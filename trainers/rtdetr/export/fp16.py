"""The FP16 variant of an exported graph: weights and arithmetic in float16, inputs and outputs float32.

The converter is ONNX Runtime's copy of onnxconverter-common's (``onnxruntime.transformers.float16``),
already installed with onnxruntime.  ``keep_io_types`` puts Casts at the graph's edges, so callers
feed and read float32 exactly as with the FP32 file.  Some operations stay float32, for the reasons
RT-DETR's FP16 deployments break (research notes, section 6): LayerNormalization and Softmax
overflow or lose the small differences that decide the ranking, and TopK over float16 scores ties
detections that float32 keeps apart.  Constants beyond float16's range (the "invalid anchor" logit)
are clamped to its largest finite value by the converter.
"""
from __future__ import annotations

KEEP_FLOAT32 = ["LayerNormalization", "Softmax", "TopK"]


def convert_to_fp16(model_proto):
    """A float16 copy of ``model_proto`` (an onnx ModelProto) with float32 inputs and outputs."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    import copy

    blocked = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(KEEP_FLOAT32))
    return convert_float_to_float16(copy.deepcopy(model_proto), keep_io_types=True, op_block_list=blocked)
