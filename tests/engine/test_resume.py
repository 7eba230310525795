"""RNG capture/restore and the training-state payload, through a weights_only checkpoint file."""
import random

import numpy as np
import torch
from torch import nn

from trainers.rtdetr.checkpoint import load_checkpoint, model_state_from, save_checkpoint
from trainers.rtdetr.engine.ema import ModelEMA
from trainers.rtdetr.engine.resume import (capture_rng_state, restore_rng_state, restore_training_state,
                                           rng_state_for_rank, training_payload)


def draws():
    return random.random(), random.gauss(0, 1), float(np.random.rand()), float(torch.rand(1))


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)                    # leaves a cached gaussian in Python's generator
    state = capture_rng_state()
    expected = draws()
    save_checkpoint({"rng": [state]}, tmp_path / "rng.pth")
    draws()                               # move every generator on
    restore_rng_state(load_checkpoint(tmp_path / "rng.pth")["rng"][0])
    assert draws() == expected


def test_rng_state_for_rank_falls_back_to_rank_zero():
    assert rng_state_for_rank([], 0) is None
    assert rng_state_for_rank(["r0", "r1"], 1) == "r1"
    assert rng_state_for_rank(["r0"], 3) == "r0"


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return model, ModelEMA(model, decay=0.9, ramp=1), optimizer, scheduler


def test_payload_keeps_ema_weights_as_model_and_raw_weights_as_train_model(tmp_path):
    model, ema, optimizer, scheduler = build()
    for _ in range(2):
        model(torch.randn(5, 3)).sum().backward()
        optimizer.step()
        scheduler.step()
        ema.update(model)
    payload = training_payload(model=model, ema=ema, optimizer=optimizer, lr_scheduler=scheduler, grad_scaler=None,
                               epoch=4, global_step=2, best_metric=0.5, best_epoch=3, rng=[capture_rng_state()],
                               model_config={"hidden_dim": 4}, num_classes=1, category_ids=[7], class_names=["raccoon"])
    save_checkpoint(payload, tmp_path / "ckpt.pth")
    loaded = load_checkpoint(tmp_path / "ckpt.pth")
    assert torch.equal(model_state_from(loaded)["0.weight"], ema.module[0].weight)
    assert torch.equal(loaded["train_model"]["0.weight"], model[0].weight)
    assert not torch.equal(loaded["model"]["0.weight"], loaded["train_model"]["0.weight"])

    model2, ema2, optimizer2, scheduler2 = build()
    point = restore_training_state(loaded, model=model2, ema=ema2, optimizer=optimizer2, lr_scheduler=scheduler2,
                                   grad_scaler=None)
    assert (point.start_epoch, point.global_step, point.best_metric, point.best_epoch) == (5, 2, 0.5, 3)
    assert len(point.rng) == 1
    assert ema2.updates == 2
    for a, b in zip(model2.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ema2.module.state_dict().values(), ema.module.state_dict().values()):
        assert torch.equal(a, b)
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()
    assert optimizer2.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]


def test_payload_without_ema_has_no_train_model():
    model, _, optimizer, scheduler = build()
    payload = training_payload(model=model, ema=None, optimizer=optimizer, lr_scheduler=scheduler, grad_scaler=None,
                               epoch=0, global_step=0, best_metric=None, best_epoch=None, rng=[],
                               model_config={}, num_classes=1, category_ids=[], class_names=[])
    assert "train_model" not in payload and "ema" not in payload
    assert torch.equal(payload["model"]["0.weight"], model[0].weight)
