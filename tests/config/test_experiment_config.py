"""The trainer's config: NVIDIA's spec templates load, unknown keys and bad types are refused."""
from pathlib import Path

import pytest
import yaml

from trainers.errors import UserError
from trainers.rtdetr.config import ExperimentConfig, check_supported, experiment_from_dict, experiment_to_dict

NVIDIA_REFERENCES = Path(__file__).resolve().parents[1] / "search_spaces" / "tao-skill-bank" / "tao-train-rtdetr" / "references"


@pytest.mark.parametrize("template", sorted(p.name for p in NVIDIA_REFERENCES.glob("spec_template_*.yaml")))
def test_every_nvidia_rtdetr_template_loads(template):
    spec = yaml.safe_load((NVIDIA_REFERENCES / template).read_text())
    cfg = experiment_from_dict(spec)
    check_supported(cfg)
    assert cfg.model.backbone == spec.get("model", {}).get("backbone", "resnet_50")


def test_defaults_are_nvidia_defaults():
    cfg = ExperimentConfig()
    assert cfg.train.optim.lr == 1e-4 and cfg.train.optim.lr_backbone == 1e-5
    assert cfg.dataset.batch_size == 4 and cfg.model.num_queries == 300
    assert cfg.gen_trt_engine.tensorrt.max_batch_size == 4
    assert cfg.distill.bindings[0].criterion == "IOU"


def test_round_trip_through_a_dict():
    cfg = ExperimentConfig()
    cfg.dataset.train_data_sources[0].image_dir = "/data/images"
    again = experiment_from_dict(experiment_to_dict(cfg))
    assert again == cfg


def test_unknown_keys_are_named_with_a_suggestion():
    with pytest.raises(UserError) as error:
        experiment_from_dict({"train": {"lr": 0.1, "optim": {"lrr": 1}}, "modle": {}})
    message = str(error.value)
    assert "train.lr: unknown key (did you mean 'train.optim.lr'?)" in message
    assert "train.optim.lrr: unknown key (did you mean 'lr'?)" in message
    assert "modle: unknown key (did you mean 'model'?)" in message


def test_wrong_types_are_named():
    with pytest.raises(UserError, match=r"dataset.batch_size: expected an integer, got 'four'"):
        experiment_from_dict({"dataset": {"batch_size": "four"}})
    with pytest.raises(UserError, match=r"dataset.train_data_sources.0.json_file: expected a string"):
        experiment_from_dict({"dataset": {"train_data_sources": [{"json_file": 3}]}})


def test_yaml_1_1_exponent_text_is_a_float():
    assert experiment_from_dict({"train": {"optim": {"lr": "1e-4"}}}).train.optim.lr == 1e-4


@pytest.mark.parametrize("key, value, fragment", [
    ("model.backbone", "convnext_tiny", "model.backbone: 'convnext_tiny' is not supported"),
    ("model.frozen_fm.enabled", True, "model.frozen_fm.enabled: true is not supported"),
    ("train.distributed_strategy", "fsdp", "train.distributed_strategy: 'fsdp' is not supported"),
    ("export.format", "xdl", "export.format: 'xdl' is not supported"),
])
def test_accepted_but_unsupported_values_are_refused(key, value, fragment):
    spec: dict = {}
    node = spec
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    cfg = experiment_from_dict(spec)
    with pytest.raises(UserError, match=fragment):
        check_supported(cfg)
