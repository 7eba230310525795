"""The RT-DETR trainer: model, data, training engine, evaluation and deployment."""

__all__ = ["load_model"]


def __getattr__(name):
    # Imported on first use: reading a spec (trainers.rtdetr.config) must not pay for torch and the model.
    if name == "load_model":
        from .load import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
