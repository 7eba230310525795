"""The checked-in skill folder is exactly what the config dataclasses generate, in NVIDIA's format."""
import json

import yaml

from trainers.rtdetr import skill_gen
from trainers.rtdetr.config import experiment_from_dict

ACTIONS = ("train", "evaluate", "inference", "export", "gen_trt_engine", "quantize", "distill")


def test_checked_in_skill_folder_is_not_stale():
    stale = skill_gen.stale_files()
    assert not stale, f"run `python -m trainers.rtdetr.skill_gen`; stale: {stale}"


def test_every_action_has_a_schema_and_a_template_that_loads():
    manifest = json.loads((skill_gen.SKILL_DIR / "schemas" / "manifest.json").read_text())
    assert set(manifest["actions"]) == set(ACTIONS)
    for action, entry in manifest["actions"].items():
        schema = json.loads((skill_gen.SKILL_DIR / entry["path"]).read_text())
        template = yaml.safe_load((skill_gen.SKILL_DIR / entry["spec_template"]).read_text())
        assert template == schema["default"]
        experiment_from_dict(template)


def test_train_schema_has_nvidias_default_search_space_and_shape():
    schema = json.loads((skill_gen.SKILL_DIR / "schemas" / "train.schema.json").read_text())
    assert set(schema["automl_default_parameters"]) == {
        "train.optim.lr", "train.optim.lr_backbone", "train.optim.weight_decay", "train.optim.lr_decay",
        "train.optim.lr_step_size", "train.optim.momentum", "train.ema.decay", "dataset.batch_size",
        "dataset.workers", "dataset.augmentation.distortion_prob", "dataset.augmentation.iou_crop_prob",
        "model.num_queries", "model.num_select", "model.enc_layers", "model.dec_layers"}
    # TAO's action filter: no evaluate / inference / export / gen_trt_engine section in the train schema.
    assert not {"evaluate", "inference", "export", "gen_trt_engine"} & set(schema["properties"])
    num_queries = schema["properties"]["model"]["properties"]["num_queries"]
    assert num_queries["type"] == "int" and num_queries["maximum"] == float("inf")
    assert num_queries["parent_param"] == "TRUE"
    lr = schema["properties"]["train"]["properties"]["optim"]["properties"]["lr"]
    assert (lr["minimum"], lr["maximum"], lr["math_cond"]) == (0.0, 1.0, "> 0.0")
    assert "Infinity" in (skill_gen.SKILL_DIR / "schemas" / "train.schema.json").read_text()


def test_skill_info_enables_automl():
    info = yaml.safe_load((skill_gen.SKILL_DIR / "references" / "skill_info.yaml").read_text())
    assert info["automl_enabled"] is True
    assert set(info["actions"]) == set(ACTIONS)
