"""Tiny transformers RT-DETR models built offline, the reference our model is checked against."""
from __future__ import annotations

import math
from pathlib import Path

import torch

TINY_BACKBONES = {
    "basic": dict(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], layer_type="basic",
                  out_indices=[2, 3, 4]),
    "bottleneck": dict(embedding_size=16, hidden_sizes=[32, 64, 128, 256], depths=[1, 2, 1, 1],
                       layer_type="bottleneck", out_indices=[2, 3, 4]),
}


def tiny_hf_model(block: str = "basic", num_labels: int = 3, seed: int = 0, num_denoising: int = 4,
                  freeze_bn: bool = True):
    """A random RTDetrForObjectDetection of ~0.5M parameters with non-trivial BatchNorm statistics."""
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrResNetConfig

    torch.manual_seed(seed)
    backbone = RTDetrResNetConfig(**TINY_BACKBONES[block])
    in_channels = [backbone.hidden_sizes[i - 1] for i in backbone.out_indices]
    config = RTDetrConfig(backbone_config=backbone, encoder_in_channels=in_channels, encoder_hidden_dim=32,
                          d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2,
                          decoder_attention_heads=2, decoder_layers=2, num_queries=10, num_denoising=num_denoising,
                          num_labels=num_labels, decoder_in_channels=[32, 32, 32], hidden_expansion=0.5,
                          freeze_backbone_batch_norms=freeze_bn)
    model = RTDetrForObjectDetection(config)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn_like(buffer) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand_like(buffer) + 0.5)
        for name, param in model.named_parameters():
            # transformers initialises linear and conv layers with std 0.01: attention would be nearly uniform and
            # position embeddings invisible; xavier weights make every part of the network matter
            if param.dim() >= 2 and "embed" not in name:
                torch.nn.init.xavier_uniform_(param)
            # random class heads instead of the constant prior: no ties in the top-k selections
            if ("class_embed" in name or "score_head" in name) and name.endswith("bias"):
                param.normal_(-math.log(99), 0.5)
        for module in model.modules():  # transformers draws BatchNorm weights with std 0.01: make them O(1)
            if hasattr(module, "running_var") and module.weight.dim() == 1:
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
    return model.eval()


def save_hf(model, folder: Path) -> Path:
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def official_position_embedding(height: int, width: int, embed_dim: int = 256, temperature: float = 10000.0,
                                cls_token: bool = False, device=None, dtype=torch.float32):
    """lyuwenyu/RT-DETR's ``build_2d_sincos_position_embedding`` (W-outer grid), in transformers' signature."""
    grid_w, grid_h = torch.meshgrid(torch.arange(width, dtype=torch.float32), torch.arange(height, dtype=torch.float32),
                                    indexing="ij")
    pos_dim = embed_dim // 4
    omega = 1.0 / temperature ** (torch.arange(pos_dim, dtype=torch.float32) / pos_dim)
    out_w = grid_w.flatten()[..., None] @ omega[None]
    out_h = grid_h.flatten()[..., None] @ omega[None]
    return torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1).to(device=device, dtype=dtype)


def hf_targets(targets):
    return [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in targets]
