"""The bad-input corpus: each case breaks one input of a real command and says what the one error line must name.

One module per class of input (specs and schemas, annotations, images and
archives, checkpoints, sweep settings); :mod:`.registry` says what a case is.
"""
from . import annotations, checkpoints, images, specs, sweep  # noqa: F401  (each registers its cases)
from .registry import CASES, MARKER

__all__ = ["CASES", "MARKER"]
