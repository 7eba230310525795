"""A finished trial's kept checkpoint loses its training state (optimizer, schedule, RNG), not its model."""
from __future__ import annotations

import torch

from automl.sweep.slim import slim_checkpoint
from tests.model.test_export_and_checkpoints import tiny_model
from trainers.rtdetr import load_model
from trainers.rtdetr.checkpoint import load_checkpoint, save_checkpoint


def test_slimming_keeps_weights_and_metadata_drops_the_optimizer_and_loads_the_same_model(tmp_path):
    model = tiny_model().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    optimizer.step()   # AdamW's two moments per weight: the bulk of a training checkpoint
    model.eval()
    path = save_checkpoint({
        "model": model.state_dict(), "train_model": model.state_dict(), "architecture": model.arch.to_dict(),
        "num_classes": 4, "category_ids": [1, 2, 3, 4], "class_names": list("abcd"), "epoch": 2,
        "optimizer": optimizer.state_dict(), "lr_scheduler": {"last_epoch": 2}, "grad_scaler": {},
        "rng": [{"torch": torch.get_rng_state()}]}, tmp_path / "model_best.pth")
    before = path.stat().st_size

    saved = slim_checkpoint(path)

    assert saved > 0 and path.stat().st_size == before - saved and path.stat().st_size < 0.7 * before
    payload = load_checkpoint(path)
    assert not {"optimizer", "lr_scheduler", "grad_scaler", "rng"} & set(payload)
    assert payload["class_names"] == list("abcd") and payload["epoch"] == 2 and "train_model" in payload
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected, again = model(images), load_model(path)(images)
    assert torch.equal(expected["pred_logits"], again["pred_logits"])
    assert slim_checkpoint(path) == 0, "a slim checkpoint is left as it is"
    assert not list(tmp_path.glob(".*.tmp"))
