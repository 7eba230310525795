"""TAO schemas translate to valid Draft 2020-12 schemas; NVIDIA's own template validates against NVIDIA's schema."""
from pathlib import Path

import jsonschema
import pytest
import yaml

from automl.skills import find_skill
from search_spaces.json_schema import to_json_schema
from search_spaces.schema_reader import load_schema_file
from search_spaces.validation import SpecValidator

BANK = Path(__file__).resolve().parents[1] / "search_spaces" / "tao-skill-bank"
SCHEMAS = sorted(BANK.glob("*/schemas/train.schema.json")) + sorted(find_skill("rtdetr").root.glob("schemas/*.schema.json"))


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_translation_is_a_valid_draft_2020_12_schema(path):
    jsonschema.Draft202012Validator.check_schema(to_json_schema(load_schema_file(path)))


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_a_schemas_own_default_is_valid(path):
    schema = load_schema_file(path)
    assert SpecValidator(schema).problems(schema["default"]) == []


def test_nvidias_train_template_is_valid_for_nvidias_schema():
    schema = load_schema_file(BANK / "tao-train-rtdetr" / "schemas" / "train.schema.json")
    template = yaml.safe_load((BANK / "tao-train-rtdetr" / "references" / "spec_template_train.yaml").read_text())
    assert SpecValidator(schema).problems(template) == []


def test_math_cond_and_relations_are_checked():
    schema = load_schema_file(BANK / "tao-train-dino" / "schemas" / "train.schema.json")
    validator = SpecValidator(schema)
    spec = {"dataset": {"augmentation": {"train_random_crop_min": 600, "train_random_crop_max": 500}},
            "model": {"fix_refpoints_hw": 0}}
    problems = validator.problems(spec)
    assert "dataset.augmentation.train_random_crop_max: 500 must be > " \
           "dataset.augmentation.train_random_crop_min (600)" in problems
    assert "model.fix_refpoints_hw: 0 is not allowed here" in problems
    cosmos = SpecValidator(load_schema_file(BANK / "tao-finetune-cosmos-reason" / "schemas" / "train.schema.json"))
    assert any(p.startswith("policy.lora.r: 3 is not one of: 1, 2, 4") for p in
               cosmos.problems({"policy": {"lora": {"r": 3}}}))
