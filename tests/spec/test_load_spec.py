"""load_spec: NVIDIA's templates load, overrides are YAML scalars with list indexes, every problem is reported."""
from pathlib import Path

import pytest

from automl import cli
from automl.spec import deep_merge, load_spec, load_spec_dict
from search_spaces.overrides import apply_overrides, parse_override
from trainers.errors import UserError

NVIDIA_REFERENCES = Path(__file__).resolve().parents[1] / "search_spaces" / "tao-skill-bank" / "tao-train-rtdetr" / \
    "references"
TEMPLATE = NVIDIA_REFERENCES / "spec_template_train.yaml"


@pytest.mark.parametrize("template", sorted(p.name for p in NVIDIA_REFERENCES.glob("spec_template_*.yaml")))
def test_nvidias_templates_pass_validation(template):
    spec = load_spec_dict("rtdetr", NVIDIA_REFERENCES / template, action="train")
    assert spec["model"]["backbone"] == "resnet_50"


def test_overrides_are_yaml_scalars_and_index_lists():
    cfg = load_spec("rtdetr", TEMPLATE, [
        "train.optim.lr=3e-4", "train.enable_ema=true", "train.gpu_ids=[0, 1]", "train.num_epochs=20",
        "dataset.train_data_sources.0.image_dir=/data/images", "dataset.train_data_sources.1.json_file=/b.json",
        "model.backbone=resnet_18"])
    assert cfg.train.optim.lr == 3e-4 and cfg.train.enable_ema is True
    assert cfg.train.gpu_ids == [0, 1] and cfg.train.num_epochs == 20
    assert cfg.dataset.train_data_sources[0].image_dir == "/data/images"
    assert cfg.dataset.train_data_sources[1].json_file == "/b.json"
    assert cfg.model.backbone == "resnet_18"


def test_parse_override_reads_types():
    assert parse_override("a.b=1e-4") == (["a", "b"], 1e-4)
    assert parse_override("a=off") == (["a"], False)
    assert parse_override("a.0.b='7'") == (["a", 0, "b"], "7")
    assert parse_override("a=") == (["a"], "")
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2"]) == {"a": {"b": 1, "c": 2}}


def test_spec_merges_over_the_defaults_and_keeps_them_for_empty_sections(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model:\ntrain:\n  num_epochs: 3\n")
    cfg = load_spec("rtdetr", spec)
    assert cfg.train.num_epochs == 3 and cfg.train.optim.lr == 1e-4 and cfg.model.num_queries == 300
    assert deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


def test_all_problems_are_reported_together_one_line_each(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model:\n  num_queries: 0\ntrain:\n  num_epochs: x\n  lr: 1\n")
    with pytest.raises(UserError) as error:
        load_spec("rtdetr", spec)
    lines = str(error.value).splitlines()
    assert lines[0] == f"{spec}: 3 problems"
    assert any(line.strip().startswith("model.num_queries: 0 is below the minimum 1") for line in lines)
    assert any(line.strip().startswith("train.num_epochs: expected an integer") for line in lines)
    assert any(line.strip().startswith("train.lr: unknown key") for line in lines)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no such spec file"):
        load_spec("rtdetr", tmp_path / "nope.yaml")


def test_unknown_skill_and_action():
    with pytest.raises(UserError, match="unknown skill .*did you mean 'rtdetr'"):
        load_spec("rtdert", TEMPLATE)
    with pytest.raises(UserError, match="has no action 'prune'"):
        load_spec("rtdetr", TEMPLATE, action="prune")


def test_validate_command_says_valid(capsys):
    assert cli.main(["validate", "--skill", "rtdetr", "-e", str(TEMPLATE), "train.num_epochs=2"]) == 0
    assert "valid rtdetr spec for train" in capsys.readouterr().out


def test_a_skill_folder_without_a_trainer_is_validated_by_its_schemas(tmp_path):
    bank = Path(__file__).resolve().parents[1] / "search_spaces" / "tao-skill-bank" / "tao-train-rtdetr"
    spec = tmp_path / "spec.yaml"
    spec.write_text("train:\n  num_epochs: 0\n")
    with pytest.raises(UserError, match="train.num_epochs: 0 is below the minimum 1"):
        load_spec_dict(str(bank), spec)
    spec.write_text("train:\n  num_epochs: 4\n")
    assert load_spec_dict(str(bank), spec)["train"]["num_epochs"] == 4
