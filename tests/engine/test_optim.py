"""Parameter groups and the lr schedule of train.optim."""
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from trainers.errors import UserError
from trainers.rtdetr.engine.optim import build_lr_scheduler, build_optimizer, build_param_groups


class ToyDetector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1))
        self.decoder = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.GroupNorm(2, 4), nn.Linear(4, 2))


def optim_cfg(**overrides):
    base = dict(optimizer="AdamW", lr=1e-4, lr_backbone=1e-5, weight_decay=1e-4, momentum=0.9,
                lr_scheduler="MultiStep", lr_steps=[2], lr_step_size=1, lr_decay=0.1, warmup_steps=0)
    base.update(overrides)
    return SimpleNamespace(**base)


def names_in(group, model):
    ids = {id(p) for p in group["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_backbone_gets_lr_backbone_and_norms_and_biases_get_no_weight_decay():
    model = ToyDetector()
    groups = {g["name"]: g for g in build_param_groups(model, lr=1e-4, lr_backbone=1e-5, weight_decay=0.05)}
    assert names_in(groups["backbone"], model) == {"backbone.0.weight", "backbone.2.weight"}
    assert names_in(groups["backbone_no_decay"], model) == {"backbone.1.weight", "backbone.1.bias", "backbone.2.bias"}
    assert names_in(groups["head"], model) == {"decoder.0.weight", "decoder.3.weight"}
    assert names_in(groups["head_no_decay"], model) == {
        "decoder.0.bias", "decoder.1.weight", "decoder.1.bias", "decoder.2.weight", "decoder.2.bias", "decoder.3.bias"}
    assert groups["backbone"]["lr"] == groups["backbone_no_decay"]["lr"] == 1e-5
    assert groups["head"]["lr"] == groups["head_no_decay"]["lr"] == 1e-4
    assert groups["backbone"]["weight_decay"] == groups["head"]["weight_decay"] == 0.05
    assert groups["backbone_no_decay"]["weight_decay"] == groups["head_no_decay"]["weight_decay"] == 0.0


def test_frozen_parameters_are_left_out_and_all_frozen_is_a_user_error():
    model = ToyDetector()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    groups = build_param_groups(model, lr=1e-4, lr_backbone=1e-5, weight_decay=0.05)
    assert {g["name"] for g in groups} == {"head", "head_no_decay"}
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(UserError, match="no trainable parameters"):
        build_param_groups(model, lr=1e-4, lr_backbone=1e-5, weight_decay=0.05)


def test_adamw_and_sgd_and_unknown_optimizer():
    assert isinstance(build_optimizer(ToyDetector(), optim_cfg()), torch.optim.AdamW)
    sgd = build_optimizer(ToyDetector(), optim_cfg(optimizer="SGD"))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    with pytest.raises(UserError, match="train.optim.optimizer"):
        build_optimizer(ToyDetector(), optim_cfg(optimizer="Lion"))


def lr_trace(cfg, iters_per_epoch, num_epochs):
    optimizer = build_optimizer(ToyDetector(), cfg)
    scheduler = build_lr_scheduler(optimizer, cfg, iters_per_epoch=iters_per_epoch, num_epochs=num_epochs)
    head = next(i for i, g in enumerate(optimizer.param_groups) if g["name"] == "head")
    trace = []
    for _ in range(iters_per_epoch * num_epochs):
        trace.append(optimizer.param_groups[head]["lr"])
        optimizer.step()
        scheduler.step()
    return trace


def test_linear_warmup_counts_iterations_then_multistep_milestones_count_epochs():
    trace = lr_trace(optim_cfg(warmup_steps=4, lr_steps=[2, 3]), iters_per_epoch=3, num_epochs=4)
    assert trace[:4] == pytest.approx([1e-4 * k / 4 for k in (1, 2, 3, 4)])
    assert trace[4:6] == pytest.approx([1e-4] * 2)          # rest of epoch 1
    assert trace[6:9] == pytest.approx([1e-5] * 3)          # epoch 2: first milestone
    assert trace[9:12] == pytest.approx([1e-6] * 3)         # epoch 3: second milestone


def test_steplr_decays_every_step_size_epochs():
    trace = lr_trace(optim_cfg(lr_scheduler="StepLR", lr_step_size=2, lr_decay=0.5), iters_per_epoch=2, num_epochs=5)
    assert trace == pytest.approx([1e-4] * 4 + [5e-5] * 4 + [2.5e-5] * 2)


def test_cosine_anneals_per_iteration_after_warmup_towards_zero():
    trace = lr_trace(optim_cfg(lr_scheduler="cosine", warmup_steps=2), iters_per_epoch=5, num_epochs=2)
    # 10 iterations, 2 of warmup: the cosine spans the 8 after it.
    assert trace[:4] == pytest.approx([5e-5, 1e-4, 1e-4, 1e-4 * 0.5 * (1 + math.cos(math.pi / 8))])
    assert all(a >= b for a, b in zip(trace[2:], trace[3:]))
    assert trace[-1] < 0.05 * 1e-4


def test_backbone_group_follows_the_same_schedule():
    cfg = optim_cfg(warmup_steps=2)
    optimizer = build_optimizer(ToyDetector(), cfg)
    build_lr_scheduler(optimizer, cfg, iters_per_epoch=2, num_epochs=1)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["backbone"] == pytest.approx(0.5e-5) and lrs["head"] == pytest.approx(0.5e-4)


def test_scheduler_state_round_trips_into_a_fresh_scheduler():
    cfg = optim_cfg(lr_scheduler="cosine", warmup_steps=3)
    optimizer = build_optimizer(ToyDetector(), cfg)
    scheduler = build_lr_scheduler(optimizer, cfg, iters_per_epoch=4, num_epochs=3)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    expected_next = [g["lr"] for g in optimizer.param_groups]

    fresh_optimizer = build_optimizer(ToyDetector(), cfg)
    fresh = build_lr_scheduler(fresh_optimizer, cfg, iters_per_epoch=4, num_epochs=3)
    fresh.load_state_dict(state)
    assert [g["lr"] for g in fresh_optimizer.param_groups] == pytest.approx(expected_next)
    fresh_optimizer.step()
    fresh.step()
    optimizer.step()
    scheduler.step()
    assert fresh.get_last_lr() == pytest.approx(scheduler.get_last_lr())
    assert all(isinstance(v, int) for v in state.values())


def test_unknown_scheduler_is_a_user_error():
    optimizer = build_optimizer(ToyDetector(), optim_cfg())
    with pytest.raises(UserError, match="lr_scheduler"):
        build_lr_scheduler(optimizer, optim_cfg(lr_scheduler="Poly"), iters_per_epoch=2, num_epochs=1)
