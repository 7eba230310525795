"""The RT-DETR trainer: model, data, training engine, evaluation and deployment."""
from .load import load_model

__all__ = ["load_model"]
