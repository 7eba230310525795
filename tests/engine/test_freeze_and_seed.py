"""train.freeze / model.train_backbone, and train.seed / cudnn.deterministic."""
import random

import numpy as np
import pytest
import torch
from torch import nn

from trainers.errors import UserError
from trainers.rtdetr.engine.freeze import apply_freeze, keep_frozen_in_eval
from trainers.rtdetr.engine.reproducibility import (determinism_state, restore_determinism, seed_everything,
                                                    set_deterministic)


class ToyDetector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.decoder = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))


def test_train_backbone_false_freezes_the_backbone_and_keeps_its_batchnorm_in_eval():
    model = ToyDetector()
    frozen = apply_freeze(model, [], train_backbone=False)
    assert frozen == ["backbone"]
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())
    model.train()
    keep_frozen_in_eval(model, frozen)
    assert not model.backbone[1].training and model.decoder.training


def test_freeze_takes_dotted_module_names_and_refuses_unknown_ones():
    model = ToyDetector()
    assert apply_freeze(model, ["decoder.0"]) == ["decoder.0"]
    assert not model.decoder[0].weight.requires_grad and model.decoder[1].weight.requires_grad
    with pytest.raises(UserError, match="no module 'neck'.*backbone, decoder"):
        apply_freeze(model, ["neck"])


def test_same_seed_same_draws_and_ranks_differ():
    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))
    seed_everything(7)
    first = draws()
    seed_everything(7)
    assert draws() == first
    seed_everything(7, rank=1)
    assert draws() != first


def test_deterministic_mode_can_be_switched_on_and_off_and_restored():
    before = determinism_state()
    set_deterministic(True)
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    set_deterministic(False, benchmark=True)
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    restore_determinism(before)
    assert determinism_state() == before
