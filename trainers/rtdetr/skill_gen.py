"""Generate the rtdetr skill folder from the trainer's config dataclasses.

    python -m trainers.rtdetr.skill_gen            # rewrite trainers/rtdetr/skill/
    python -m trainers.rtdetr.skill_gen --check    # exit 1 if the checked-in files are stale

The folder has NVIDIA's layout (tao-skill-bank ``tao-train-rtdetr``):
``schemas/<action>.schema.json``, ``schemas/manifest.json``,
``references/skill_info.yaml`` and ``references/spec_template_<action>.yaml``
(the schema's ``default`` as YAML).  The dataclasses are the only source: edit
them, then run this script.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Dict

import yaml

from trainers.rtdetr.config import ExperimentConfig
from trainers.rtdetr.config.to_schema import ACTIONS, action_schema

SKILL_DIR = Path(__file__).resolve().parent / "skill"

X_TAO_SCHEMA = {"core_module": "rtdetr", "model": "rtdetr", "network_arch": "rtdetr", "schema_version": 1,
                "source": "tao-automl trainers/rtdetr/config dataclasses"}

# What each action reads from and writes to the file system (skill_info.yaml "inputs"/"outputs").
_TRAIN_DATA = {
    "dataset.train_data_sources[0].image_dir": {"type": "folder"},
    "dataset.train_data_sources[0].json_file": {"type": "file"},
    "dataset.val_data_sources.image_dir": {"type": "folder"},
    "dataset.val_data_sources.json_file": {"type": "file"},
}
ACTION_INPUTS: Dict[str, Dict[str, Any]] = {
    "train": {**_TRAIN_DATA,
              "model.pretrained_backbone_path": {"type": "file", "optional": True},
              "train.pretrained_model_path": {"type": "file", "optional": True},
              "train.resume_training_checkpoint_path": {"type": "file", "optional": True}},
    "distill": {**_TRAIN_DATA, "distill.pretrained_teacher_model_path": {"type": "file"}},
    "quantize": {"dataset.quant_calibration_data_sources.image_dir": {"type": "folder"},
                 "dataset.quant_calibration_data_sources.json_file": {"type": "file"},
                 "quantize.model_path": {"type": "file"}},
    "evaluate": {"dataset.test_data_sources.image_dir": {"type": "folder"},
                 "dataset.test_data_sources.json_file": {"type": "file"},
                 "evaluate.checkpoint": {"type": "file"}},
    "inference": {"dataset.infer_data_sources.image_dir": {"type": "folder"},
                  "dataset.infer_data_sources.classmap": {"type": "file"},
                  "inference.checkpoint": {"type": "file"}},
    "export": {"export.checkpoint": {"type": "file"}},
    "gen_trt_engine": {"gen_trt_engine.onnx_file": {"type": "file"}},
}
ACTION_OUTPUTS: Dict[str, Dict[str, Any]] = {
    "export": {"results_dir": {"type": "folder"}, "export.onnx_file": {"type": "file"}},
    "gen_trt_engine": {"results_dir": {"type": "folder"}, "gen_trt_engine.trt_engine": {"type": "file"}},
}


def render() -> Dict[str, str]:
    """Every file of the skill folder: relative path -> text."""
    files: Dict[str, str] = {}
    manifest_actions = {}
    for action in ACTIONS:
        schema = action_schema(ExperimentConfig, action, X_TAO_SCHEMA)
        files[f"schemas/{action}.schema.json"] = _json(schema)
        files[f"references/spec_template_{action}.yaml"] = yaml.safe_dump(schema["default"], sort_keys=False)
        manifest_actions[action] = {
            "path": f"schemas/{action}.schema.json",
            "spec_template": f"references/spec_template_{action}.yaml",
            "core_module": "rtdetr",
            "schema_action": action,
            "automl_default_parameters": sorted(schema["automl_default_parameters"]),
            "automl_disabled_parameters": sorted(schema["automl_disabled_parameters"]),
            "popular": schema["popular"],
        }
    manifest = {"schema_version": 1, "model": "rtdetr", "network_arch": "rtdetr", "automl_enabled": True,
                "failures": {}, "actions": manifest_actions}
    files["schemas/manifest.json"] = _json(manifest)
    files["references/skill_info.yaml"] = yaml.safe_dump(_skill_info(), sort_keys=False)
    return files


def _skill_info() -> Dict[str, Any]:
    actions = {}
    for action in ACTIONS:
        actions[action] = {
            "command": f"tao-automl {action} --skill rtdetr -e {{config_path}}",
            "config_format": "yaml",
            "mode": "config",
            # Copies: shared dicts would be dumped as YAML anchors.
            "inputs": copy.deepcopy(ACTION_INPUTS[action]),
            "outputs": copy.deepcopy(ACTION_OUTPUTS.get(action, {"results_dir": {"type": "folder"}})),
        }
    return {
        "name": "rtdetr",
        "network_arch": "rtdetr",
        "automl_enabled": True,
        "data_format": "coco",
        "gpu_spec_key": "train.num_gpus",
        "monitoring_metric": "val_mAP50",
        "metric_direction": "maximize",
        "actions": actions,
        "spec_templates": {action: f"../references/spec_template_{action}.yaml" for action in ACTIONS},
        "description": "RT-DETR (Real-Time DEtection TRansformer) for 2D object detection, trained by "
                       "tao-automl's PyTorch trainer; specs use NVIDIA TAO's keys.",
    }


def _json(document: Any) -> str:
    # allow_nan writes float('inf') as Infinity, exactly as NVIDIA's generator does.
    return json.dumps(document, indent=2, sort_keys=True, allow_nan=True) + "\n"


def stale_files(root: Path = SKILL_DIR) -> list:
    """Relative paths whose checked-in text differs from what the dataclasses give."""
    return [rel for rel, text in render().items()
            if not (root / rel).is_file() or (root / rel).read_text() != text]


def write(root: Path = SKILL_DIR) -> None:
    for rel, text in render().items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.rtdetr.skill_gen", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the checked-in files are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for rel in stale:
            print(f"stale: trainers/rtdetr/skill/{rel}")
        return 1 if stale else 0
    write()
    print(f"wrote {len(render())} files under {SKILL_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
