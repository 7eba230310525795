"""The reader accepts NVIDIA's schema format in all its variants, and standard JSON Schema."""
import math

import pytest

from search_spaces.math_cond import MathCondError, parse_math_cond
from search_spaces.schema_reader import read_schema

from .nvidia import NVIDIA_SCHEMAS, OURS, read


@pytest.mark.parametrize("name", sorted(NVIDIA_SCHEMAS))
def test_every_nvidia_schema_reads_and_lists_its_defaults(name):
    schema = read(NVIDIA_SCHEMAS[name])
    assert schema.default_parameters
    assert all(p in schema.leaves for p in schema.default_parameters)


def test_infinity_missing_maxima_and_parent_param_strings_are_understood():
    schema = read(NVIDIA_SCHEMAS["rtdetr"])
    assert schema.leaves["dataset.batch_size"].maximum == math.inf
    assert schema.leaves["model.dec_layers"].maximum is None
    assert schema.leaves["model.num_queries"].parent_param is True
    assert schema.leaves["model.num_select"].depends_on == "model.num_queries"
    assert schema.leaves["train.optim.lr_scheduler"].kind == "categorical"
    assert schema.leaves["train.optim.lr_steps"].kind == "list"


def test_non_dict_entries_under_properties_are_skipped():
    schema = read(NVIDIA_SCHEMAS["rtdetr"])  # its root properties hold a bare automl_disabled_parameters list
    assert "automl_disabled_parameters" not in schema.leaves


def test_nested_automl_lists_are_collected():
    document = {"type": "object", "properties": {
        "train": {"type": "collection", "automl_default_parameters": ["train.a"],
                  "automl_disabled_parameters": ["train.b"],
                  "properties": {"a": {"type": "int", "default": 2, "minimum": 1, "maximum": 4},
                                 "b": {"type": "int", "default": 2}}}}}
    schema = read_schema(document)
    assert schema.default_parameters == ("train.a",)
    assert "train.b" in schema.disabled_parameters


def test_standard_json_schema_vocabulary_is_accepted():
    document = {"type": "object", "properties": {"model": {"type": "object", "properties": {
        "n_estimators": {"type": "integer", "default": 100, "minimum": 10, "maximum": 500, "automl_enabled": True},
        "max_features": {"type": "number", "default": 0.5, "minimum": 0.1, "maximum": 1.0},
        "bootstrap": {"type": "boolean", "default": True},
        "criterion": {"type": "string", "enum": ["gini", "entropy"], "default": "gini"},
        "sizes": {"type": "array", "default": [1, 2]},
        "blend": {"anyOf": [{"type": "number"}, {"type": "array"}], "default": 1e-3}}}}}
    leaves = read_schema(document).leaves
    assert leaves["model.n_estimators"].kind == "int"
    assert leaves["model.max_features"].kind == "float"
    assert leaves["model.bootstrap"].kind == "bool"
    assert leaves["model.criterion"].kind == "categorical"
    assert leaves["model.sizes"].kind == "list"
    assert leaves["model.blend"].kind == "float"


def test_cosmos_any_of_learning_rate_is_a_float():
    assert read(NVIDIA_SCHEMAS["cosmos-reason"]).leaves["train.optm_lr"].kind == "float"


def test_our_schema_carries_the_trainer_hints():
    leaves = read(OURS).leaves
    assert leaves["train.optim.momentum"].active_when == {"train.optim.optimizer": ("SGD",)}
    assert leaves["model.num_select"].maximum_expr.startswith("min(model.num_queries")
    assert leaves["model.backbone"].supported_options == ("resnet_18", "resnet_34", "resnet_50", "resnet_101")


@pytest.mark.parametrize("text, comparisons, power, multiple", [
    ("> 0.0", ((">", 0.0),), None, None),
    (">0", ((">", 0.0),), None, None),
    (">= 1", ((">=", 1.0),), None, None),
    ("!= 0", (("!=", 0.0),), None, None),
    ("> 0.0 <= 1.0", ((">", 0.0), ("<=", 1.0)), None, None),
    ("> depends_on", ((">", "depends_on"),), None, None),
    ("^ 2", (), 2, None),
    ("/ 8", (), None, 8),
])
def test_math_cond_forms(text, comparisons, power, multiple):
    cond = parse_math_cond(text)
    assert (cond.comparisons, cond.power_of, cond.multiple_of) == (comparisons, power, multiple)


@pytest.mark.parametrize("text", ["~ 3", "> x", "^ 1", "/ 2.5"])
def test_math_cond_that_is_not_understood_is_an_error(text):
    with pytest.raises(MathCondError):
        parse_math_cond(text)
