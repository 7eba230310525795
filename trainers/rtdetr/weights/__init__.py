"""Importing weights from other RT-DETR implementations."""
from .importer import ImportReport, import_weights

__all__ = ["ImportReport", "import_weights"]
