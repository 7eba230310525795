"""Knowledge distillation: a frozen teacher RT-DETR trains the spec's student (``tao-automl distill``)."""
from .run import build_distill_parts, distill_dir, distill_from, run_distill

__all__ = ["build_distill_parts", "distill_dir", "distill_from", "run_distill"]
