"""RT-DETR: backbone -> hybrid encoder -> decoder."""
from __future__ import annotations

from typing import Dict, List, Optional

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
        return self.decoder(self.encoder(self.backbone(images)), targets)

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
