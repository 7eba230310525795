"""Where distillation looks inside a model: forward hooks that keep named intermediate outputs.

Names follow NVIDIA TAO's RT-DETR distiller:

- ``srcs``: the encoder's input projections, the AIFI-encoded level replaced
  by its transformer output (TAO's ``proj_feats``), one [B, hidden, H_l, W_l]
  map per level;
- ``dsrcs``: the encoder's outputs (the decoder's input features), same shapes;
- ``bb_feats``: the backbone levels [B, C_l, H_l, W_l];
- any other name: the output of that module (``model.named_modules()``).

The model is not forked: :class:`FeatureTaps` registers hooks and keeps the
latest values.  Hooks are plain closures, so a ``deepcopy`` of the model (the
EMA copy) shares them harmlessly instead of copying this object; a student's
taps only record while gradients are on, so validation passes leave them alone.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import Tensor, nn

from trainers.errors import UserError

from .taps import Tap

ALIASES = ("srcs", "dsrcs", "bb_feats")


def _as_maps(value) -> List[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, Tensor) for v in value):
        return list(value)
    raise TypeError(f"not a tensor or a list of tensors: {type(value).__name__}")


def check_module_names(model: nn.Module, names: Sequence[str], key: str) -> None:
    """Every name is an alias or a module of ``model``; else one line with close matches."""
    modules = dict(model.named_modules())
    for name in names:
        if name in ALIASES or (name and name in modules):
            continue
        import difflib

        close = difflib.get_close_matches(name, list(ALIASES) + [m for m in modules if m], n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"{key}: {name!r} is not a module of the RT-DETR model{hint}; use srcs, dsrcs, bb_feats "
                        f"or a module name such as encoder.input_proj.0")


class FeatureTaps(Tap):
    """Keeps the latest output of each named place of ``model``; ``taps[name]`` -> list of [B,C,H,W] maps."""

    def __init__(self, model: nn.Module, names: Sequence[str], *, only_with_grad: bool):
        super().__init__()
        self._only_with_grad = only_with_grad
        modules = dict(model.named_modules())
        for name in dict.fromkeys(names):
            if name == "srcs":
                encoder = model.encoder
                for level, proj in enumerate(encoder.input_proj):
                    self._hook(proj, f"srcs.proj.{level}")
                for layer, level in zip(encoder.encoder, encoder.use_encoder_idx):
                    self._hook(layer, f"srcs.aifi.{level}")
            elif name == "dsrcs":
                self._hook(model.encoder, name)
            elif name == "bb_feats":
                self._hook(model.backbone, name)
            else:
                self._hook(modules[name], name)
        self.num_levels = len(model.encoder.input_proj)

    def _hook(self, module: nn.Module, key: str) -> None:
        values, only_with_grad = self.values, self._only_with_grad

        def keep(_module, _inputs, output) -> None:
            if not only_with_grad or torch.is_grad_enabled():
                values[key] = output

        self._handles.append(module.register_forward_hook(keep))

    def __getitem__(self, name: str) -> List[Tensor]:
        if name != "srcs":
            return _as_maps(self.values[name])
        maps = []
        for level in range(self.num_levels):
            proj = self.values[f"srcs.proj.{level}"]
            tokens = self.values.get(f"srcs.aifi.{level}")
            if tokens is not None:   # [B, H*W, C] -> [B, C, H, W], as the encoder does
                b, c, h, w = proj.shape
                proj = tokens.transpose(1, 2).reshape(b, c, h, w)
            maps.append(proj)
        return maps


class InputTap:
    """Keeps the images of the latest training forward of ``model`` (the criterion never sees them)."""

    def __init__(self, model: nn.Module):
        self.images: Tensor | None = None
        holder = self

        def keep(_module, args) -> None:
            if torch.is_grad_enabled() and args:
                holder.images = args[0]

        self._handle = model.register_forward_pre_hook(keep)

    def remove(self) -> None:
        self._handle.remove()
        self.images = None


class QuerySelectionTap(Tap):
    """The teacher's encoder top-k selection, which TAO's IOU criterion weights features with.

    After a forward in eval mode: ``queries`` [B,Q,hidden] (the selected encoder
    tokens, TAO's ``obj_queries``), ``boxes`` [B,Q,4] cxcywh (``enc_topk_bboxes``)
    and ``scores`` [B,Q] (their best class probability).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        decoder = model.decoder
        self.num_queries = decoder.num_queries
        values = self.values

        def keep_logits(_module, _inputs, logits) -> None:
            values["scores"] = torch.topk(logits.max(-1).values, self.num_queries, dim=1).values.sigmoid()

        def keep_decoder_inputs(_module, args) -> None:
            # TransformerDecoder(target, ref_unact, ...): in eval, target = the top-k tokens, ref = their boxes
            values["queries"] = args[0]
            values["boxes"] = args[1].sigmoid()

        self._handles += [decoder.enc_score_head.register_forward_hook(keep_logits),
                          decoder.decoder.register_forward_pre_hook(keep_decoder_inputs)]

