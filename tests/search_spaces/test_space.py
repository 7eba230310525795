"""The search space: NVIDIA's defaults with sane ranges, no-op parameters left out, user edits."""
import math

import pytest

from search_spaces.space import SpaceRequest, build_search_space
from trainers.errors import UserError

from .nvidia import COSMOS, DINO, MASK2FORMER, NVIDIA_RTDETR, OURS, read

RTDETR_DEFAULTS = {
    "train.optim.lr", "train.optim.lr_backbone", "train.optim.weight_decay", "train.optim.lr_decay",
    "train.optim.lr_step_size", "train.optim.momentum", "train.ema.decay", "dataset.batch_size", "dataset.workers",
    "dataset.augmentation.distortion_prob", "dataset.augmentation.iou_crop_prob", "model.num_queries",
    "model.num_select", "model.enc_layers", "model.dec_layers"}


@pytest.mark.parametrize("path", [NVIDIA_RTDETR, OURS])
def test_rtdetr_space_covers_the_15_defaults_each_searched_or_explained(path):
    space = build_search_space(read(path, with_rtdetr_hints=True))
    searched = set(space.names())
    excluded = {e.name: e.reason for e in space.excluded}
    assert searched | set(excluded) == RTDETR_DEFAULTS
    assert "AdamW" in excluded["train.optim.momentum"]
    assert "MultiStep" in excluded["train.optim.lr_step_size"]
    assert "enable_ema" in excluded["train.ema.decay"]
    assert "loading speed" in excluded["dataset.workers"]


def test_learning_rates_are_log_scaled_around_the_default_never_zero_to_one():
    space = build_search_space(read(NVIDIA_RTDETR, with_rtdetr_hints=True))
    lr = space.parameter("train.optim.lr")
    assert lr.log and (lr.low, lr.high) == pytest.approx((1e-5, 1e-3))
    assert space.parameter("train.optim.lr_backbone").log
    assert space.parameter("train.optim.weight_decay").log
    assert not space.parameter("train.optim.lr_decay").log


def test_unbounded_ranges_become_a_documented_band_around_the_default():
    space = build_search_space(read(NVIDIA_RTDETR, with_rtdetr_hints=True))
    assert (space.parameter("dataset.batch_size").low, space.parameter("dataset.batch_size").high) == (2, 8)
    assert (space.parameter("model.num_queries").low, space.parameter("model.num_queries").high) == (150, 600)
    assert (space.parameter("model.dec_layers").low, space.parameter("model.dec_layers").high) == (3, 12)
    assert any("Infinity" in note for note in space.parameter("dataset.batch_size").notes)
    for parameter in space.parameters:
        if parameter.choices is None:
            assert math.isfinite(parameter.low) and math.isfinite(parameter.high)


def test_spec_settings_decide_which_parameters_matter():
    schema = read(OURS)
    space = build_search_space(schema, {"train.optim.optimizer": "SGD", "train.optim.lr_scheduler": "StepLR",
                                        "train.enable_ema": True})
    assert {"train.optim.momentum", "train.optim.lr_step_size", "train.ema.decay"} <= set(space.names())
    cosine = build_search_space(schema, {"train.optim.lr_scheduler": "cosine"})
    assert "train.optim.lr_decay" in {e.name for e in cosine.excluded}


def test_searching_the_optimizer_makes_momentum_conditional():
    space = build_search_space(read(OURS), request=SpaceRequest(add=("train.optim.optimizer",)))
    momentum = space.parameter("train.optim.momentum")
    assert momentum.active_when == {"train.optim.optimizer": ("SGD",)}
    names = space.names()
    assert names.index("train.optim.optimizer") < names.index("train.optim.momentum")


def test_num_select_is_bounded_by_num_queries_and_classes():
    space = build_search_space(read(OURS))
    num_select = space.parameter("model.num_select")
    assert num_select.bounds({"model.num_queries": 200, "dataset.num_classes": 80}) == (1, 200)
    assert num_select.bounds({"model.num_queries": 200, "dataset.num_classes": 1}) == (1, 199)
    names = space.names()
    assert names.index("model.num_queries") < names.index("model.num_select")


def test_dino_relation_mask2former_multiple_and_cosmos_powers_and_weights():
    dino = build_search_space(read(DINO))
    crop_max = dino.parameter("dataset.augmentation.train_random_crop_max")
    assert crop_max.bounds({"dataset.augmentation.train_random_crop_min": 500})[0] == 501
    hidden = build_search_space(read(MASK2FORMER)).parameter("model.mask_former.hidden_dim")
    assert (hidden.step, hidden.low, hidden.high) == (8, 64, 1024)
    cosmos = build_search_space(read(COSMOS))
    assert cosmos.parameter("policy.lora.r").choices == (1, 2, 4, 8, 16, 32, 64, 128, 256)
    decay = cosmos.parameter("train.optm_decay_type")
    assert decay.choices == ("linear", "sqrt", "cosine", "none")
    assert decay.weights == pytest.approx((0.1, 0.1, 0.4, 0.4))


def test_divide_with_depends_on_is_derived_not_searched():
    space = build_search_space(read(COSMOS), request=SpaceRequest(add=("train.optm_warmup_epochs",)))
    (derived,) = space.derived
    assert derived.name == "train.optm_warmup_epochs"
    assert derived.compute({"train.epoch": 9}) == 4


def test_users_add_remove_replace_and_override_ranges():
    schema = read(OURS)
    space = build_search_space(schema, request=SpaceRequest(
        add=("model.dim_feedforward", "train.optim.optimizer"), remove=("model.enc_layers",),
        range_override={"train.optim.lr": {"low": 5e-5, "high": 5e-4},
                        "train.optim.optimizer": {"choices": ["AdamW", "SGD"], "weights": [3, 1]}}))
    assert "model.enc_layers" not in space.names()
    assert space.parameter("model.dim_feedforward").high == 2048
    assert (space.parameter("train.optim.lr").low, space.parameter("train.optim.lr").high) == (5e-5, 5e-4)
    assert space.parameter("train.optim.optimizer").weights == pytest.approx((0.75, 0.25))
    only = build_search_space(schema, request=SpaceRequest(hyperparameters=("train.optim.lr",)))
    assert only.names() == ("train.optim.lr",)


def test_a_disabled_parameter_needs_explicit_enabling():
    schema = read(OURS)
    with pytest.raises(UserError, match="model.hidden_dim: the schema disables it .* automl.enable_disabled"):
        build_search_space(schema, request=SpaceRequest(add=("model.hidden_dim",)))
    space = build_search_space(schema, request=SpaceRequest(enable_disabled=("model.hidden_dim",)))
    assert "model.hidden_dim" in space.names()


def test_unknown_names_get_a_suggestion():
    with pytest.raises(UserError, match=r"'train.optim.lrr' is not a parameter .*did you mean 'train.optim.lr'"):
        build_search_space(read(OURS), request=SpaceRequest(add=("train.optim.lrr",)))
    with pytest.raises(UserError, match="is a section"):
        build_search_space(read(OURS), request=SpaceRequest(add=("train.optim",)))


@pytest.mark.parametrize("override, fragment", [
    ({"low": 0.0}, "violates the schema's math_cond '> 0.0'"),
    ({"high": 2.0}, "above the schema maximum 1.0"),
    ({"low": 1e-3, "high": 1e-4}, "low 0.001 is above high 0.0001"),
    ({"scale": "log"}, "unknown key"),
])
def test_range_overrides_must_respect_the_schema(override, fragment):
    with pytest.raises(UserError, match=fragment):
        build_search_space(read(OURS), request=SpaceRequest(range_override={"train.optim.lr": override}))


def test_a_parameter_without_scale_is_left_out_with_a_reason():
    space = build_search_space(read(OURS), request=SpaceRequest(add=("model.eval_idx",)))
    (excluded,) = [e for e in space.excluded if e.name == "model.eval_idx"]
    assert "no positive default" in excluded.reason


def test_range_overrides_accept_the_nested_form_of_command_line_overrides():
    request = SpaceRequest.from_automl_section(
        {"range_override": {"train": {"optim": {"lr": {"low": 5e-5, "high": 5e-4}}},
                            "model.num_queries": {"low": 100, "high": 200}}})
    space = build_search_space(read(OURS), request=request)
    assert (space.parameter("train.optim.lr").low, space.parameter("train.optim.lr").high) == (5e-5, 5e-4)
    assert space.parameter("model.num_queries").high == 200
    assert space.parameter("model.num_queries").notes == ("range set by automl.range_override",)


def test_a_bound_no_value_can_meet_given_the_spec_is_reported_not_sampled():
    space = build_search_space(read(DINO), {"dataset.augmentation.train_random_crop_min": 1400},
                               request=SpaceRequest(remove=("dataset.augmentation.train_random_crop_min",)))
    (excluded,) = [e for e in space.excluded if e.name == "dataset.augmentation.train_random_crop_max"]
    assert "no value satisfies > dataset.augmentation.train_random_crop_min" in excluded.reason
