"""model.pretrained_backbone_path takes torchvision-style ResNet ImageNet weights."""
from __future__ import annotations

import torch
from torch import nn

from trainers.rtdetr.config.model import ModelConfig
from trainers.rtdetr.engine.weights import load_pretrained_backbone
from trainers.rtdetr.model import build_model


def torchvision_like_resnet50_state():
    """The key names and shapes of torchvision's resnet50, random values (made here, nothing downloaded)."""
    state = {"conv1.weight": torch.randn(64, 3, 7, 7), "fc.weight": torch.randn(1000, 2048), "fc.bias": torch.zeros(1000)}
    for name, size in (("bn1", 64),):
        state.update({f"{name}.weight": torch.ones(size), f"{name}.bias": torch.zeros(size),
                      f"{name}.running_mean": torch.zeros(size), f"{name}.running_var": torch.ones(size)})
    ch_in = 64
    for stage, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512]), start=1):
        for b in range(blocks):
            shapes = {"conv1": (width, ch_in if b == 0 else width * 4, 1, 1), "conv2": (width, width, 3, 3),
                      "conv3": (width * 4, width, 1, 1)}
            for k, shape in shapes.items():
                state[f"layer{stage}.{b}.{k}.weight"] = torch.randn(shape)
                n = shape[0]
                bn = k.replace("conv", "bn")
                state.update({f"layer{stage}.{b}.{bn}.weight": torch.rand(n), f"layer{stage}.{b}.{bn}.bias": torch.rand(n),
                              f"layer{stage}.{b}.{bn}.running_mean": torch.rand(n),
                              f"layer{stage}.{b}.{bn}.running_var": torch.rand(n) + 0.5})
            if b == 0:
                state[f"layer{stage}.0.downsample.0.weight"] = torch.randn(width * 4, ch_in, 1, 1)
                for suffix in ("weight", "bias", "running_mean", "running_var"):
                    state[f"layer{stage}.0.downsample.1.{suffix}"] = torch.rand(width * 4)
        ch_in = width * 4
    return state


def test_torchvision_resnet50_weights_fill_every_stage_and_report_the_stem(tmp_path, caplog):
    state = torchvision_like_resnet50_state()
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)
    model = build_model(ModelConfig(backbone="resnet_50"), num_classes=2)
    report = load_pretrained_backbone(model, str(path))
    assert torch.equal(model.backbone.res_layers[2].blocks[5].branch2c.conv.weight, state["layer3.5.conv3.weight"])
    assert torch.equal(model.backbone.res_layers[1].blocks[0].short.conv.conv.weight,
                       state["layer2.0.downsample.0.weight"])
    assert torch.equal(model.backbone.res_layers[0].blocks[0].short.norm.running_var,
                       state["layer1.0.downsample.1.running_var"])
    assert {"conv1.weight", "fc.weight"} <= set(report.unexpected)
    assert any(name.startswith("conv1.conv1_1") for name in report.missing)
    assert not [n for n in report.missing if n.startswith("res_layers") and not n.endswith("num_batches_tracked")]
