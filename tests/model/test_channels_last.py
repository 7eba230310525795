"""Training channels-last (the trainer's layout) computes what the default layout computes, and still exports."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from trainers.rtdetr.config.model import ModelConfig
from trainers.rtdetr.model import build_criterion

from .test_export_and_checkpoints import TINY, tiny_model


def _conv_stack_gradients(model, images, weights):
    """Gradients of a fixed random projection of the encoder's outputs (backbone + encoder: every conv)."""
    model.train()
    outs = model.encoder(model.backbone(images))
    sum((o * w.to(o.dtype)).sum() for o, w in zip(outs, weights)).backward()
    return {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


def test_channels_last_convolutions_give_the_gradients_of_the_exact_computation(one_thread):
    # With 2+ threads, oneDNN's channels-last backward on CPU is 1-10 % off the exact gradients on some small
    # backbone maps (res_layers.2 at 96 px), where NCHW stays ~1e-5: that is why the trainer uses channels-last
    # on CUDA only.  One thread shows the layout itself computes the right thing.
    default = tiny_model()
    nhwc = copy.deepcopy(default).to_channels_last()
    assert nhwc.uses_channels_last() and not default.uses_channels_last()
    images = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        shapes = [o.shape for o in default.encoder(default.backbone(images))]
    weights = [torch.randn(s, generator=torch.Generator().manual_seed(1)) for s in shapes]
    # The reference is the default layout in float64: trainable BatchNorm over few values makes float32
    # rounding visible (the default layout's own float32 error reaches ~1 % on some backbone convs).
    exact = _conv_stack_gradients(copy.deepcopy(default).double(), images.double(), weights)
    default_fp32 = _conv_stack_gradients(copy.deepcopy(default), images, weights)
    grads = _conv_stack_gradients(nhwc, images.contiguous(memory_format=torch.channels_last), weights)
    assert grads.keys() == exact.keys()
    # gradients that are exactly zero in theory (a norm bias before a norm) keep fp32 noise: a floor of
    # 1e-5 of the largest gradient anywhere
    floor = 1e-5 * max(grad.abs().max().item() for grad in exact.values())
    for name, grad in exact.items():
        error = (grads[name].double() - grad).abs().max().item()
        default_error = (default_fp32[name].double() - grad).abs().max().item()
        # as close to the exact gradients as the default layout's float32 (whose error depends on the
        # kernels oneDNN picks for the thread count), or within 1e-3 of the largest gradient
        assert error <= max(2 * default_error, 1e-3 * grad.abs().max().item()) + floor, (name, error, default_error)
    # the conv weights' gradients stay NHWC, so the optimizer's state does too
    assert nhwc.backbone.conv1.conv1_1.conv.weight.grad.is_contiguous(memory_format=torch.channels_last)


def test_a_channels_last_model_trains_to_the_same_loss():
    default = tiny_model()
    nhwc = copy.deepcopy(default).to_channels_last()
    criterion = build_criterion(ModelConfig(**TINY), num_classes=4)
    images = torch.rand(2, 3, 96, 96)
    targets = [{"labels": torch.tensor([0, 3]), "boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.7, 0.6, 0.3, 0.2]])}] * 2
    losses = []
    for model in (default.train(), nhwc.train()):
        torch.manual_seed(2)  # the same denoising noise
        losses.append(sum(criterion(model(images, targets), targets).values()).item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_a_channels_last_model_exports_to_onnx_with_the_same_outputs(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = tiny_model().to_channels_last().eval()
    images = torch.rand(1, 3, 96, 96)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (images,), str(path), opset_version=17, dynamo=False, input_names=["images"],
                      output_names=["pred_logits", "pred_boxes"])
    logits, boxes = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"images": images.numpy()})
    with torch.no_grad():
        expected = tiny_model().eval()(images)
    np.testing.assert_allclose(logits, expected["pred_logits"].numpy(), atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(boxes, expected["pred_boxes"].numpy(), atol=1e-3, rtol=1e-3)
