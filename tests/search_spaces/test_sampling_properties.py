"""Thousands of draws per schema: every configuration satisfies the schema, checked independently.

The checks below read the raw schema JSON themselves (bounds, ``^ k``,
``/ k``, ``> depends_on``, constant comparisons) instead of trusting the
space's own idea of validity; RT-DETR's num_select rule is checked too.
"""
import collections
import json
import math
import random
import re

import pytest

from search_spaces.sampling import sample_configuration
from search_spaces.space import SpaceRequest, build_search_space

from .nvidia import COSMOS, DINO, MASK2FORMER, NVIDIA_RTDETR, OURS, read

DRAWS = 3000

CASES = {
    "nvidia-rtdetr": (NVIDIA_RTDETR, True, SpaceRequest()),
    "ours": (OURS, False, SpaceRequest(add=("train.optim.optimizer", "train.optim.lr_scheduler", "train.enable_ema",
                                            "model.dim_feedforward"))),
    "dino": (DINO, False, SpaceRequest(add=("model.fix_refpoints_hw",),
                                       range_override={"model.fix_refpoints_hw": {"low": -2, "high": 3}})),
    "mask2former": (MASK2FORMER, False, SpaceRequest()),
    "cosmos-reason": (COSMOS, False, SpaceRequest(add=("train.optm_warmup_epochs",))),
}


def raw_leaf(document, name):
    node = document
    for part in name.split("."):
        node = node["properties"][part]
    return node


def check_against_schema(document, name, value, configuration, base):
    leaf = raw_leaf(document, name)
    if "enum" in leaf:
        assert value in leaf["enum"], (name, value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        minimum, maximum = leaf.get("minimum"), leaf.get("maximum")
        if isinstance(minimum, (int, float)):
            assert value >= minimum, (name, value)
        if isinstance(maximum, (int, float)) and math.isfinite(maximum):
            assert value <= maximum, (name, value)
        if leaf.get("type") in ("int", "integer"):
            assert isinstance(value, int), (name, value)
    cond = leaf.get("math_cond") or ""
    for op, operand in re.findall(r"(\^|/|>=|<=|!=|>|<)\s*(depends_on|[-\d.]+)", cond):
        if op == "^":
            assert value >= 1 and math.log(value, int(operand)) == pytest.approx(round(math.log(value, int(operand))))
        elif op == "/" and "depends_on" not in leaf:
            assert value % int(operand) == 0, (name, value)
        elif op == "/":
            parent = configuration.get(leaf["depends_on"], base.get(leaf["depends_on"]))
            assert value == max(parent // int(operand), leaf.get("minimum", -math.inf))
        else:
            right = configuration.get(leaf["depends_on"], base.get(leaf["depends_on"])) \
                if operand == "depends_on" else float(operand)
            assert {">": value > right, ">=": value >= right, "<": value < right, "<=": value <= right,
                    "!=": value != right}[op], (name, value, cond, right)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_draw_satisfies_the_schema(case):
    path, hints, request = CASES[case]
    document = json.loads(path.read_text())
    space = build_search_space(read(path, with_rtdetr_hints=hints), request=request)
    rng = random.Random(case)
    for _ in range(DRAWS):
        configuration = sample_configuration(space, rng)
        for name, value in configuration.items():
            check_against_schema(document, name, value, configuration, space.base_values)
        if "model.num_select" in configuration:
            queries = configuration.get("model.num_queries", space.base_values["model.num_queries"])
            classes = space.base_values["dataset.num_classes"]
            if hints or case == "ours":
                assert configuration["model.num_select"] <= queries
                assert configuration["model.num_select"] < queries * classes


def test_num_select_stays_valid_with_a_single_class():
    space = build_search_space(read(OURS), {"dataset.num_classes": 1})
    rng = random.Random(1)
    for _ in range(DRAWS):
        configuration = sample_configuration(space, rng)
        assert configuration["model.num_select"] < configuration["model.num_queries"]


def test_option_weights_show_in_the_frequencies():
    space = build_search_space(read(COSMOS))
    rng = random.Random(7)
    counts = collections.Counter(sample_configuration(space, rng)["train.optm_decay_type"] for _ in range(DRAWS))
    for option, weight in {"linear": 0.1, "sqrt": 0.1, "cosine": 0.4, "none": 0.4}.items():
        assert counts[option] / DRAWS == pytest.approx(weight, abs=0.03)


def test_learning_rate_draws_spread_evenly_over_log10():
    space = build_search_space(read(NVIDIA_RTDETR, with_rtdetr_hints=True))
    rng = random.Random(3)
    exponents = [math.log10(sample_configuration(space, rng)["train.optim.lr"]) for _ in range(DRAWS)]
    assert min(exponents) >= -5 and max(exponents) <= -3
    assert sum(e < -4 for e in exponents) / DRAWS == pytest.approx(0.5, abs=0.04)


def test_conditional_parameters_appear_only_when_active():
    space = build_search_space(read(OURS), request=CASES["ours"][2])
    rng = random.Random(5)
    for _ in range(500):
        configuration = sample_configuration(space, rng)
        assert ("train.optim.momentum" in configuration) == (configuration["train.optim.optimizer"] == "SGD")
        assert ("train.ema.decay" in configuration) == configuration["train.enable_ema"]
        assert ("train.optim.lr_step_size" in configuration) == (configuration["train.optim.lr_scheduler"] == "StepLR")


def test_excluded_values_are_never_drawn_and_the_rest_stay_uniform():
    space = build_search_space(read(DINO), request=CASES["dino"][2])
    rng = random.Random(11)
    counts = collections.Counter(sample_configuration(space, rng)["model.fix_refpoints_hw"] for _ in range(DRAWS))
    assert 0 not in counts and set(counts) == {-2, -1, 1, 2, 3}
    assert min(counts.values()) > DRAWS / 5 * 0.8
