"""Aligned output distillation: the student decodes from the teacher's query selection, so query i meets query i.

DETR queries are an unordered set: the teacher's query 7 and the student's
query 7 need not look at the same object, so comparing outputs per index is
meaningless and matching them afterwards (Hungarian) pairs whatever happens to
be close, which early in training is noise.  KD-DETR (Wang et al., CVPR 2024)
fixes this by giving both decoders the same *distillation points*; for RT-DETR
the natural points are the teacher's encoder top-k selection:

- positions: the teacher's top-k encoder tokens (flat indices into the
  multi-scale memory; the student's memory has the same positions when the two
  share strides, levels and input size, so this works across hidden sizes);
- start boxes: the teacher's initial reference boxes for those tokens.

The student runs its own decoder once more on its own memory, its own
content vectors at those positions and the teacher's start boxes; its output
for query i and the teacher's final output for query i now describe the same
place, and every query is distilled, background ones too (they teach the
student where nothing is: "dark knowledge" DETR matching never gives).

Terms (KD-DETR's, on every decoder layer of the student, averaged):
``class`` = binary KL between the teacher's class probabilities and the
student's, summed over classes, averaged over queries; ``bbox`` / ``giou`` =
L1 and 1 - GIoU towards the teacher's boxes, weighted by the teacher's best
class probability (a background query's box is arbitrary).  Plus ``enc``:
binary KL of the encoder's class scores at *every* memory position, which
teaches the student's query selection to pick what the teacher picks.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor, nn

from trainers.rtdetr.model.box_ops import cxcywh_to_xyxy, paired_iou

from .losses import binary_kl
from .taps import Tap


class DecoderTap(Tap):
    """Keeps what one RT-DETR decoder saw in its latest forward (training forwards only when ``only_with_grad``).

    ``memory`` [B,S,D] (flattened encoder levels), ``shapes`` [(H_l, W_l)],
    ``tokens`` [B,S,D] (``enc_output(memory)``, what query content is taken
    from), ``enc_logits`` [B,S,C] (class scores of every position),
    ``start_boxes`` [B,K,4] (logits of the top-k reference boxes given to the
    decoder layers; the denoising part is cut off).
    """

    def __init__(self, model: nn.Module, *, only_with_grad: bool):
        super().__init__()
        decoder = model.decoder
        self.num_queries = decoder.num_queries
        values = self.values

        def recording() -> bool:
            return not only_with_grad or torch.is_grad_enabled()

        def keep_tokens(_module, _inputs, output) -> None:
            if recording():
                values["tokens"] = output

        def keep_logits(_module, _inputs, output) -> None:
            if recording():
                values["enc_logits"] = output

        def keep_decoder_inputs(_module, args) -> None:
            if recording():
                values["start_boxes"] = args[1][:, -self.num_queries:]   # denoising queries come first
                values["memory"], values["shapes"] = args[2], args[3]

        self._handles += [decoder.enc_output.register_forward_hook(keep_tokens),
                          decoder.enc_score_head.register_forward_hook(keep_logits),
                          decoder.decoder.register_forward_pre_hook(keep_decoder_inputs)]

    def topk(self) -> Tensor:
        """The top-k positions [B,K] the decoder selected (same rule as RTDETRDecoder.forward)."""
        return torch.topk(self.enc_logits.max(-1).values, self.num_queries, dim=1).indices


def decode_from(student: nn.Module, tap: DecoderTap, positions: Tensor, start_boxes: Tensor):
    """The student's decoder run on its own memory from ``positions`` [B,K] and ``start_boxes`` [B,K,4] (logits).

    Returns boxes [L,B,K,4] and logits [L,B,K,C], one entry per decoder layer
    (the student is in training mode).
    """
    decoder = student.decoder
    tokens = tap.tokens
    content = tokens.gather(1, positions.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])).detach()
    return decoder.decoder(content, start_boxes.detach().to(content.dtype), tap.memory, tap.shapes,
                           decoder.dec_bbox_head, decoder.dec_score_head, decoder.query_pos_head, None)


def aligned_distillation(student_logits: Tensor, student_boxes: Tensor, teacher_logits: Tensor,
                         teacher_boxes: Tensor, student_enc_logits: Optional[Tensor] = None,
                         teacher_enc_logits: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """Per-query distillation of aligned outputs.

    student_logits [L,B,K,C], student_boxes [L,B,K,4] (every decoder layer);
    teacher_logits [B,K,C], teacher_boxes [B,K,4] (cxcywh); optional encoder
    scores [B,S,C] of both at the same positions.  Returns ``class``, ``bbox``,
    ``giou`` (and ``enc`` when encoder scores are given), each 0 when the student
    equals the teacher.
    """
    probs = teacher_logits.detach().float().sigmoid()
    t_boxes = teacher_boxes.detach().float()
    weight = probs.max(-1).values                                    # [B,K]: how much a box is an object
    layers = student_logits.shape[0]
    class_loss = binary_kl(student_logits.float(), probs.expand(layers, -1, -1, -1)).sum(-1).mean()
    s_boxes = student_boxes.float()
    expanded = t_boxes.expand(layers, -1, -1, -1)
    l1 = (s_boxes - expanded).abs().sum(-1)                          # [L,B,K]
    _, giou = paired_iou(cxcywh_to_xyxy(s_boxes.reshape(-1, 4)), cxcywh_to_xyxy(expanded.reshape(-1, 4)))
    total = weight.sum().clamp(min=1e-6) * layers
    terms = {"class": class_loss,
             "bbox": (l1 * weight).sum() / total,
             "giou": ((1 - giou.reshape(l1.shape)) * weight).sum() / total}
    if student_enc_logits is not None and teacher_enc_logits is not None:
        enc_probs = teacher_enc_logits.detach().float().sigmoid()
        terms["enc"] = binary_kl(student_enc_logits.float(), enc_probs).sum(-1).mean()
    return terms
