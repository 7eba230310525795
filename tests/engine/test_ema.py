"""ModelEMA: the ramped decay over every float state entry."""
import math

import pytest
import torch
from torch import nn

from trainers.rtdetr.engine.ema import ModelEMA


def toy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))


def test_decay_ramps_from_zero_towards_the_configured_decay():
    ema = ModelEMA(toy(), decay=0.9999, ramp=2000)
    decays = []
    for updates in (1, 2000, 20000):
        ema.updates = updates
        decays.append(ema.current_decay())
    assert decays[0] == pytest.approx(0.9999 * (1 - math.exp(-1 / 2000)))
    assert decays[1] == pytest.approx(0.9999 * (1 - math.exp(-1)))
    assert decays[2] == pytest.approx(0.9999, rel=1e-4)


def test_update_averages_parameters_and_batchnorm_buffers_and_copies_counters():
    model = toy()
    ema = ModelEMA(model, decay=0.9, ramp=1)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    model.train()
    model(torch.randn(8, 3))                      # moves the BN running statistics
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1))
    current = model.state_dict()
    for key, value in ema.module.state_dict().items():
        if value.dtype.is_floating_point:
            assert torch.allclose(value, d * before[key] + (1 - d) * current[key]), key
        else:
            assert torch.equal(value, current[key]), key
    assert not torch.equal(ema.module[1].running_mean, before["1.running_mean"])


def test_ema_copy_is_frozen_and_separate_from_the_model():
    model = toy()
    ema = ModelEMA(model)
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert ema.module[0].weight.data_ptr() != model[0].weight.data_ptr()
    assert not ema.module.training


def test_state_dict_round_trip():
    model = toy()
    ema = ModelEMA(model, decay=0.99, ramp=10)
    for _ in range(3):
        with torch.no_grad():
            model[0].weight.add_(0.1)
        ema.update(model)
    restored = ModelEMA(toy(), decay=0.99, ramp=10)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 3
    for a, b in zip(restored.module.state_dict().values(), ema.module.state_dict().values()):
        assert torch.equal(a, b)
