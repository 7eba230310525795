"""What ``--quantize`` and ``--distill-from`` do with a sweep's winner, after its ONNX export.

Both read the winner's ``best_spec.yaml`` as the action's spec, so they see
exactly the configuration that won; their results go under
``results_dir/automl/quantize/`` and ``results_dir/automl/distill/``.
"""
from __future__ import annotations

from typing import Any, Callable, Dict

from .settings import SweepSettings

Log = Callable[[str], None]


def quantize_winner(skill: str, outcome, settings: SweepSettings, log: Log) -> Dict[str, Any]:
    """INT8 ONNX of the winner; calibration images default to the validation images."""
    from automl.spec import load_spec_dict
    from trainers.rtdetr.config import experiment_from_dict
    from trainers.rtdetr.quantize import quantize_model

    spec = load_spec_dict(skill, outcome.best_spec, [], "train")
    calibration = spec["dataset"].setdefault("quant_calibration_data_sources", {})
    if not calibration.get("image_dir"):
        calibration["image_dir"] = spec["dataset"]["val_data_sources"]["image_dir"]
    spec.setdefault("quantize", {})["results_dir"] = str(settings.automl_dir / "quantize")
    result = quantize_model(outcome.best_checkpoint, experiment_from_dict(spec), log=log)
    return {"int8_onnx": result.int8_onnx, "speedup": result.speedup, "map50_drop": result.map50_drop}


def distill_winner(skill: str, outcome, settings: SweepSettings, log: Log) -> Dict[str, Any]:
    """Retrain the winner's configuration as a student of ``settings.distill_from``."""
    from automl.spec import load_spec
    from trainers.rtdetr.distill import distill_from

    cfg = load_spec(skill, outcome.best_spec, [f"distill.pretrained_teacher_model_path={settings.distill_from}",
                                               f"distill.results_dir={settings.automl_dir / 'distill'}"], "distill")
    summary = distill_from(settings.distill_from, cfg, log=log)
    log(f"distilled winner: val_mAP50 {summary.get('val_mAP50')} in {summary.get('train_dir')}")
    return {"val_mAP50": summary.get("val_mAP50"), "train_dir": str(summary.get("train_dir"))}
