"""Small building blocks shared by the backbone, encoder and decoder."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def activation(name: Optional[str], inplace: bool = False) -> nn.Module:
    """``inplace`` only applies to ReLU, whose backward needs its output, not its input."""
    if name is None:
        return nn.Identity()
    return nn.ReLU(inplace=True) if name == "relu" and inplace else ACTIVATIONS[name]()


class ConvNormLayer(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> optional activation; keys ``conv`` and ``norm``."""

    def __init__(self, ch_in: int, ch_out: int, kernel_size: int, stride: int,
                 padding: Optional[int] = None, act: Optional[str] = None):
        super().__init__()
        padding = (kernel_size - 1) // 2 if padding is None else padding
        self.conv = nn.Conv2d(ch_in, ch_out, kernel_size, stride, padding=padding, bias=False)
        self.norm = nn.BatchNorm2d(ch_out)
        # in place: the norm's (or folded conv's) output is needed by no backward, so one memory pass less
        self.act = activation(act, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        norm = self.norm
        if norm.training and isinstance(norm, nn.BatchNorm2d):
            return self.act(norm(self.conv(x)))
        if not hasattr(norm, "running_var"):  # already folded by fold_batch_norms (deploy)
            return self.act(self.conv(x))
        # A norm with fixed statistics (FrozenBatchNorm2d, or BatchNorm2d in eval mode) is an affine map
        # per channel: folded into the conv's weight and bias it costs no pass over the activation, in
        # forward or backward, and the conv weight (and the norm's affine, if trainable) still get their
        # exact gradients through the fold.
        scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
        shift = norm.bias - norm.running_mean * scale
        conv = self.conv
        bias = shift if conv.bias is None else conv.bias * scale + shift
        return self.act(conv._conv_forward(x, conv.weight * scale.view(-1, 1, 1, 1), bias))


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them; keys ``layers.K``."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == last else F.relu(layer(x), inplace=True)  # addmm's backward keeps its inputs only
        return x


@torch.no_grad()
def fold_batch_norms(model: nn.Module) -> nn.Module:
    """Fold every eval-mode norm that follows a conv (a module with ``conv`` and ``norm`` children) into the conv.

    Same outputs in eval mode, one memory pass less per conv: for inference only.
    """
    for module in model.modules():
        conv, norm = getattr(module, "conv", None), getattr(module, "norm", None)
        if not (isinstance(conv, nn.Conv2d) and hasattr(norm, "running_var")):
            continue
        scale = norm.weight / (norm.running_var + norm.eps).sqrt()
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                           conv.dilation, conv.groups, bias=True).to(conv.weight)
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
        folded.bias.copy_((bias - norm.running_mean) * scale + norm.bias)
        module.conv, module.norm = folded, nn.Identity()
    return model
