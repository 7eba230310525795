"""A finished trial's kept checkpoint loses its training state (optimizer, schedule, RNG), not its model."""
from __future__ import annotations

import torch

from automl.sweep.slim import slim_checkpoint
from tests.model.test_export_and_checkpoints import tiny_model
from trainers.rtdetr import load_model
from trainers.rtdetr.checkpoint import load_checkpoint, save_checkpoint


def training_checkpoint(path):
    model = tiny_model()
    # AdamW's state: two moments per weight, the bulk of a training checkpoint.
    optimizer = {"state": {i: {"step": torch.tensor(3.0), "exp_avg": torch.randn_like(p),
                               "exp_avg_sq": torch.rand_like(p)} for i, p in enumerate(model.parameters())},
                 "param_groups": [{"lr": 1e-3, "params": list(range(len(list(model.parameters()))))}]}
    save_checkpoint({
        "model": model.state_dict(), "train_model": model.state_dict(), "architecture": model.arch.to_dict(),
        "num_classes": 4, "category_ids": [1, 2, 3, 4], "class_names": list("abcd"), "epoch": 2,
        "optimizer": optimizer, "lr_scheduler": {"last_epoch": 2}, "grad_scaler": {},
        "rng": [{"torch": torch.get_rng_state()}]}, path)
    return model, path


def test_slimming_keeps_weights_and_metadata_drops_the_optimizer_and_loads_the_same_model(tmp_path):
    model, path = training_checkpoint(tmp_path / "model_best.pth")
    before = path.stat().st_size

    saved = slim_checkpoint(path)

    assert saved > 0 and path.stat().st_size == before - saved and path.stat().st_size < 0.7 * before
    payload = load_checkpoint(path)
    assert not {"optimizer", "lr_scheduler", "grad_scaler", "rng"} & set(payload)
    assert payload["class_names"] == list("abcd") and payload["epoch"] == 2 and "train_model" in payload
    loaded = load_model(path).state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in model.state_dict().items())
    assert slim_checkpoint(path) == 0, "a slim checkpoint is left as it is"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_checkpoint_linked_under_another_name_is_slimmed_alone_and_frees_nothing(tmp_path):
    """The trainer hard-links an epoch's checkpoint names; slimming one replaces it by rename, so the other
    name keeps the full checkpoint and its blocks, and the disk freed is the slim copy's size, negative."""
    _, path = training_checkpoint(tmp_path / "model_best.pth")
    other = tmp_path / "model_epoch_002.pth"
    other.hardlink_to(path)
    full = path.stat().st_size

    freed = slim_checkpoint(path)

    assert freed == -path.stat().st_size
    assert other.stat().st_size == full and "optimizer" in load_checkpoint(other)
    assert path.stat().st_nlink == 1 and other.stat().st_nlink == 1
