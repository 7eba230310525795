"""INT8 calibration: batches of images preprocessed exactly as for evaluation, and the entropy calibrator.

:class:`CalibrationBatches` is plain numpy (tested without TensorRT): it lists
the images of ``cal_image_dir`` with inference's lister (folders, archives,
HDF5 frames) and preprocesses them with the evaluation transforms (resize to
H x W, or letterbox with ``preserve_aspect_ratio``; pixels / 255), so the
calibration statistics are those of the inputs the engine will see.

:func:`make_entropy_calibrator` subclasses ``tensorrt.IInt8EntropyCalibrator2``
when called, so this module imports without TensorRT.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from trainers.atomic_write import write_atomic
from trainers.errors import UserError

from ..data.transforms import eval_transforms
from ..inference_images import InferenceImages

KEY = "gen_trt_engine.tensorrt.calibration"


class CalibrationBatches:
    """``cal_batches`` batches of float32 ``[cal_batch_size, 3, H, W]`` (C-contiguous), images in sorted order.

    Fewer images than ``batch_size * batches`` gives fewer batches (said in ``notes``);
    fewer than one batch is an error naming the key.
    """

    def __init__(self, image_dirs: Sequence[str], input_size: Tuple[int, int], batch_size: int, batches: int,
                 preserve_aspect_ratio: bool = False, cache_root: Optional[Path] = None):
        image_dirs = [str(d) for d in image_dirs if str(d).strip()]
        if not image_dirs:
            raise UserError(f"{KEY}.cal_image_dir: no folder given; list folders of calibration images")
        try:
            self.images = InferenceImages(image_dirs, eval_transforms(input_size, preserve_aspect_ratio),
                                          cache_root=cache_root)
        except UserError as error:
            raise UserError(f"{KEY}.cal_image_dir: {error}") from None
        self.batch_size, self.input_size = int(batch_size), tuple(input_size)
        self.notes: List[str] = []
        available = len(self.images) // self.batch_size
        if available == 0:
            raise UserError(f"{KEY}.cal_batch_size: {batch_size} but cal_image_dir holds only "
                            f"{len(self.images)} image(s); lower cal_batch_size or add images")
        self.batches = min(int(batches), available)
        if self.batches < batches:
            self.notes.append(f"calibration: {len(self.images)} images make {self.batches} batches of "
                              f"{self.batch_size}, not the {batches} asked ({KEY}.cal_batches)")

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[np.ndarray]:
        for batch in range(self.batches):
            start = batch * self.batch_size
            tensors = [self.images[i][0] for i in range(start, start + self.batch_size)]
            yield np.ascontiguousarray(np.stack([t.numpy() for t in tensors]), dtype=np.float32)


def read_cache(path: Path) -> Optional[bytes]:
    """The calibration cache, or None (TensorRT then calibrates from the images)."""
    path = Path(path)
    return path.read_bytes() if path.is_file() and path.stat().st_size > 0 else None


def write_cache(path: Path, cache) -> None:
    write_atomic(path, lambda handle: handle.write(bytes(cache)))


def make_entropy_calibrator(trt, batches: Optional[CalibrationBatches], cache_file: Path, device: str = "cuda"):
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` from one reused CUDA buffer.

    With ``batches`` None only the cache is used (TensorRT fails the build if
    the cache does not fit the network, which the builder reports).
    """
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()  # pybind11 trampolines need the base initialised
            self.iterator = iter(batches) if batches is not None else iter(())
            self.buffer: Optional[torch.Tensor] = None
            self.done = 0

        def get_batch_size(self) -> int:
            return batches.batch_size if batches is not None else 1

        def get_batch(self, names, *args):
            array = next(self.iterator, None)
            if array is None:
                return None  # no more batches: calibration ends
            host = torch.from_numpy(array)
            if self.buffer is None or self.buffer.shape != host.shape:
                self.buffer = torch.empty(host.shape, dtype=torch.float32, device=device)
            self.buffer.copy_(host)
            torch.cuda.synchronize(self.buffer.device)  # TensorRT reads it on its own stream
            self.done += 1
            return [int(self.buffer.data_ptr())] * len(names)

        def read_calibration_cache(self, *args):
            return read_cache(cache_file)

        def write_calibration_cache(self, cache, *args) -> None:
            write_cache(cache_file, cache)

    return EntropyCalibrator()
