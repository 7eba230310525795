"""Deploy a checkpoint: ONNX export (post-processor inside, checked with ONNX Runtime), its FP16 variant
and DeepStream's nvinfer files.

    report = export_onnx("model_best.pth", "export/model.onnx")   # -> ExportReport
    print(report.line()); assert report.passed
"""
from .nvdsinfer import serialize_nvdsinfer
from .onnx_export import ExportReport, export_onnx

__all__ = ["ExportReport", "export_onnx", "serialize_nvdsinfer"]
