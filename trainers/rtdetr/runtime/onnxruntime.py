"""The ONNX Runtime predictor: an ``.onnx`` written by ``tao-automl export`` and nothing else.

The file's metadata (see trainers/rtdetr/export/metadata.py) names the classes,
the input size and the batch; the CUDA provider is used when ``device`` asks
for a GPU and onnxruntime has it, else the CPU.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from trainers.errors import UserError

from .predictor import Predictor


class OnnxRuntimePredictor(Predictor):
    """``predict(images float32 [B,3,H,W]) -> (labels, boxes, scores)`` through an InferenceSession.

    ``num_threads``: ONNX Runtime's intra-op threads (None: its default, one per physical core).
    """

    runtime = "onnxruntime"

    def __init__(self, path: str, device: str = "cpu", num_threads: Optional[int] = None):
        import onnxruntime as ort

        from trainers.rtdetr.export.metadata import info_from_props

        if not Path(path).is_file():
            raise UserError(f"{path}: ONNX file not found")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=_providers(device))
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"{path}: ONNX Runtime cannot load this file ({first})") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        super().__init__(path, info_from_props(metadata, str(path)))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        if set(self.output_names) != {"labels", "boxes", "scores"}:
            raise UserError(f"{path}: outputs are {self.output_names}, expected labels, boxes, scores "
                            f"(a graph exported by `tao-automl export`)")

    @property
    def providers(self) -> List[str]:
        return self.session.get_providers()

    def predict(self, images: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if self.info.input_size and tuple(images.shape[-2:]) != tuple(self.info.input_size):
            raise ValueError(f"{self.path} takes images of {self.info.input_size[0]}x{self.info.input_size[1]}, "
                             f"got {images.shape[-2]}x{images.shape[-1]}")
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: images})))
        return outputs["labels"], outputs["boxes"], outputs["scores"]

    def close(self) -> None:
        self.__dict__.pop("session", None)


def _providers(device: str) -> List[str]:
    import onnxruntime as ort

    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
