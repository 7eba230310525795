"""RT-DETR: backbone -> hybrid encoder -> decoder."""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from .architecture import Architecture
from .backbone import PResNet
from .decoder import RTDETRDecoder
from .encoder import HybridEncoder, RepVggBlock
from .layers import fold_batch_norms

# The coarsest level is stride 32 and the fusion upsamples by exact factors of 2.
SIZE_MULTIPLE = 32


class RTDETR(nn.Module):
    """``model(images)`` with images [B,3,H,W] in 0..1 (H, W multiples of 32).

    Eval: ``{"pred_logits": [B,Q,C], "pred_boxes": [B,Q,4]}`` (cx, cy, w, h
    normalised).  Training with ``targets`` (per image ``labels`` [N] and
    normalised cxcywh ``boxes`` [N,4]) adds what the criterion needs (see
    :class:`RTDETRDecoder`).
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        self.backbone = PResNet(arch.backbone)
        self.encoder = HybridEncoder(self.backbone.out_channels, arch.encoder)
        self.decoder = RTDETRDecoder(arch.num_classes, [arch.encoder.hidden_dim] * len(self.backbone.out_channels),
                                     arch.decoder)

    @property
    def num_classes(self) -> int:
        return self.arch.num_classes

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None) -> Dict:
        height, width = images.shape[-2:]
        if isinstance(height, int) and (height % SIZE_MULTIPLE or width % SIZE_MULTIPLE):
            raise ValueError(f"image size {height}x{width} is not a multiple of {SIZE_MULTIPLE}")
        if self.uses_channels_last():
            images = images.contiguous(memory_format=torch.channels_last)
        return self.decoder(self.encoder(self.backbone(images)), targets)

    def uses_channels_last(self) -> bool:
        """Whether the conv weights are stored channels-last (NHWC), as :meth:`to_channels_last` leaves them."""
        weight = self.backbone.conv1.conv1_1.conv.weight  # [32, 3, 3, 3]: the two layouts differ in strides
        return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()

    def to_channels_last(self) -> "RTDETR":
        """Store every conv weight channels-last (NHWC); the forward then feeds the images NHWC too.

        Same outputs.  oneDNN's NHWC convolutions are faster on CPU than NCHW ones in forward and
        backward (a resnet_18 backbone step at 320x320, batch 4: x1.4), and on CUDA NHWC is the
        layout tensor cores want under autocast.  Activations stay NHWC through backbone and
        encoder, and the decoder's flatten of each level to tokens becomes a free view.
        """
        return self.to(memory_format=torch.channels_last)

    def fuse_for_deploy(self) -> "RTDETR":
        """Fold the RepVGG branches into single convs and BatchNorms into their convs.

        Same outputs, about 15 % faster on CPU; for export and inference only
        (the model cannot train afterwards).
        """
        self.eval()
        for module in self.modules():
            if isinstance(module, RepVggBlock) and module.conv is None:
                module.fuse()
        fold_batch_norms(self)
        return self
