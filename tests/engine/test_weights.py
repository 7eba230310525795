"""Shape-matched loading of pretrained weights, with a report of what did not fit."""
import pytest
import torch
from torch import nn

from trainers.errors import UserError
from trainers.rtdetr.checkpoint import save_checkpoint
from trainers.rtdetr.engine.weights import load_pretrained_backbone, load_pretrained_model


class ToyDetector(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.class_head = nn.Linear(4, num_classes)
        self.box_head = nn.Linear(4, 4)


def test_pretrained_model_skips_a_class_head_of_another_size_and_reports_it(tmp_path):
    coco = ToyDetector(num_classes=80)
    state = coco.state_dict()
    state["extra.anchor"] = torch.zeros(3)
    save_checkpoint({"model": state}, tmp_path / "coco.pth")
    mine = ToyDetector(num_classes=3)
    head_before = mine.class_head.weight.clone()
    report = load_pretrained_model(mine, str(tmp_path / "coco.pth"))
    assert torch.equal(mine.backbone[0].weight, coco.backbone[0].weight)
    assert torch.equal(mine.box_head.weight, coco.box_head.weight)
    assert torch.equal(mine.class_head.weight, head_before)
    assert {name for name, _, _ in report.skipped} == {"class_head.weight", "class_head.bias"}
    assert ("class_head.weight", (80, 4), (3, 4)) in report.skipped
    assert report.unexpected == ["extra.anchor"]
    assert report.missing == []
    assert "skipped (shape differs): class_head.weight [80, 4] vs [3, 4]" in report.summary("x")


def test_official_layout_saved_under_ddp_is_read_from_ema_module(tmp_path):
    source = ToyDetector(num_classes=3)
    wrapped = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"ema": {"module": wrapped, "updates": 10}, "model": {}}, tmp_path / "official.pth")
    mine = ToyDetector(num_classes=3)
    report = load_pretrained_model(mine, str(tmp_path / "official.pth"))
    assert not report.missing and not report.unexpected and not report.skipped
    assert torch.equal(mine.class_head.weight, source.class_head.weight)


def test_backbone_weights_load_with_or_without_the_backbone_prefix(tmp_path):
    source = ToyDetector(num_classes=3)
    save_checkpoint({"model": source.backbone.state_dict()}, tmp_path / "bare.pth")
    save_checkpoint({"model": source.state_dict()}, tmp_path / "whole.pth")
    for name in ("bare.pth", "whole.pth"):
        mine = ToyDetector(num_classes=3)
        report = load_pretrained_backbone(mine, str(tmp_path / name))
        assert torch.equal(mine.backbone[0].weight, source.backbone[0].weight)
        assert not torch.equal(mine.box_head.weight, source.box_head.weight)
        assert not report.missing and not report.unexpected


def test_a_file_that_matches_nothing_is_a_user_error(tmp_path):
    save_checkpoint({"model": {"classifier.weight": torch.zeros(10, 512)}}, tmp_path / "unrelated.pth")
    with pytest.raises(UserError, match="pretrained_backbone_path.*no weight matches"):
        load_pretrained_backbone(ToyDetector(3), str(tmp_path / "unrelated.pth"))
    with pytest.raises(UserError, match="pretrained_model_path.*no weight matches"):
        load_pretrained_model(ToyDetector(3), str(tmp_path / "unrelated.pth"))
