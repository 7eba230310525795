"""Device choice, autocast per precision, GradScaler, fp32 loss inputs."""
import pytest
import torch
from torch import nn

from trainers.errors import UserError
from trainers.rtdetr.engine.precision import autocast, make_grad_scaler, select_device, to_float32

CPU = torch.device("cpu")


def test_cpu_when_no_gpu_is_requested():
    assert select_device(0) == CPU
    if not torch.cuda.is_available():
        assert select_device(4, local_rank=1) == CPU


def test_bf16_autocast_runs_on_the_cpu_and_fp32_is_untouched():
    layer = nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast("bf16", CPU):
        assert layer(x).dtype == torch.bfloat16
    with autocast("fp32", CPU):
        assert layer(x).dtype == torch.float32


def test_fp16_on_the_cpu_is_a_clear_user_error():
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
        autocast("fp16", CPU)
    with pytest.raises(UserError, match="train.precision"):
        autocast("fp8", CPU)


def test_grad_scaler_is_active_only_for_fp16():
    assert not make_grad_scaler("fp32", CPU).is_enabled()
    assert not make_grad_scaler("bf16", CPU).is_enabled()
    if torch.cuda.is_available():
        assert make_grad_scaler("fp16", torch.device("cuda")).is_enabled()


def test_outputs_are_cast_to_float32_for_the_criterion_and_integers_are_kept():
    outputs = {"pred_logits": torch.ones(2, 3, dtype=torch.bfloat16),
               "aux_outputs": [{"pred_boxes": torch.ones(2, 4, dtype=torch.float16)}],
               "dn_meta": {"dn_num_split": [4, 300], "positive": (torch.arange(3),)}}
    cast = to_float32(outputs)
    assert cast["pred_logits"].dtype == torch.float32
    assert cast["aux_outputs"][0]["pred_boxes"].dtype == torch.float32
    assert cast["dn_meta"]["dn_num_split"] == [4, 300]
    assert cast["dn_meta"]["positive"][0].dtype == torch.int64
