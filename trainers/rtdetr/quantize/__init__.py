"""Post-training int8 quantization for CPU deployment (ONNX Runtime static, QDQ): ``tao-automl quantize``."""
from .run import QuantizeResult, quantize_model, run_quantize

__all__ = ["QuantizeResult", "quantize_model", "run_quantize"]
