"""What a person watching sees: a progress bar on a terminal, TensorBoard when it is installed.

The bar redraws one line (``\\r``) with the step, the running loss and
images/s.  When the stream is not a terminal (a log file, a Ray trial, CI)
it prints nothing: the per-epoch summary line in the log and metrics.jsonl
say what is needed without thousands of carriage returns.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Optional, TextIO

LOG = logging.getLogger(__name__)
BAR_WIDTH = 24


class ProgressBar:
    """``bar.update(images=B, loss=L)`` after each step; ``bar.close()`` at the end of the epoch."""

    def __init__(self, total: int, description: str, stream: Optional[TextIO] = None,
                 enabled: Optional[bool] = None):
        self.total = max(0, int(total))
        self.description = description
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) if enabled is None else enabled
        self.steps = 0
        self.images = 0
        self.loss: Optional[float] = None
        self.started = time.perf_counter()

    @property
    def images_per_second(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.images / elapsed if elapsed > 0 else 0.0

    def render(self) -> str:
        fraction = self.steps / self.total if self.total else 0.0
        filled = int(BAR_WIDTH * min(1.0, fraction))
        loss = f"{self.loss:.4f}" if self.loss is not None else "-"
        return (f"{self.description} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.steps}/{self.total} "
                f"loss {loss} {self.images_per_second:.1f} img/s")

    def update(self, images: int, loss: Optional[float] = None) -> None:
        self.steps += 1
        self.images += int(images)
        if loss is not None:
            self.loss = float(loss)
        if self.enabled:
            self.stream.write("\r" + self.render())
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


class TensorBoardLog:
    """Scalars to TensorBoard under ``log_dir`` when the ``tensorboard`` package is installed, else nothing."""

    def __init__(self, log_dir: Path, enabled: bool = True):
        self.writer: Any = None
        if enabled and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=str(log_dir))

    @property
    def active(self) -> bool:
        return self.writer is not None

    def scalars(self, values: Mapping[str, Optional[float]], step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
