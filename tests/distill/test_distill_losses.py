"""Distillation terms: zero when the student is the teacher, positive otherwise, gradients into the student only."""
import copy

import pytest
import torch

from trainers.rtdetr.config.model import ModelConfig
from trainers.rtdetr.distill.aligned import DecoderTap, aligned_distillation, decode_from
from trainers.rtdetr.distill.bindings import FeatureTaps, QuerySelectionTap
from trainers.rtdetr.distill.criterion import Binding, DistillationCriterion
from trainers.rtdetr.distill.losses import (feature_loss, iou_feature_loss, output_distillation, query_mask,
                                            query_quality)
from trainers.rtdetr.model import build_criterion, build_model

TINY = dict(backbone="resnet_18", hidden_dim=32, feat_channels=[32, 32, 32], nheads=2, dim_feedforward=64,
            dec_layers=2, num_queries=20, num_select=20, expansion=0.5, dn_number=8)
NUM_CLASSES = 3
BINDINGS = [Binding("srcs", "srcs", "IOU", 1.0, "loss_distill_srcs"),
            Binding("dsrcs", "dsrcs", "IOU", 0.5, "loss_distill_dsrcs"),
            Binding("encoder.input_proj.0", "encoder.input_proj.0", "L2", 1.0, "loss_distill_proj0"),
            Binding("dsrcs", "dsrcs", "KL", 1.0, "loss_distill_dsrcs_kl"),
            Binding("encoder.input_proj.1", "encoder.input_proj.1", "L1", 1.0, "loss_distill_proj1")]


def tiny(seed: int, **changes):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**{**TINY, **changes}), NUM_CLASSES)
    with torch.no_grad():   # confident, distinct scores: the teacher keeps some queries
        for head in model.decoder.dec_score_head:
            head.bias.normal_(0.0, 2.0)
        for head in model.decoder.dec_bbox_head:
            head.layers[-1].weight.normal_(0.0, 0.1)
    return model


def targets():
    return [{"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]])},
            {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.3]])}]


def criterion_for(student, teacher, coef=1.0):
    teacher = teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return DistillationCriterion(build_criterion(ModelConfig(**TINY), NUM_CLASSES), student, teacher, BINDINGS,
                                 coef=coef, score_threshold=0.3, class_weight=1.0, bbox_weight=5.0, giou_weight=2.0)


def distill_terms(student, teacher, coef=1.0):
    torch.manual_seed(1)
    images = torch.rand(2, 3, 64, 64)
    criterion = criterion_for(student, teacher, coef)
    losses = criterion(student(images, targets()), targets())
    criterion.remove_hooks()
    return {k: v for k, v in losses.items() if k.startswith("loss_distill")}, losses


def test_every_term_is_zero_when_the_student_is_the_teacher():
    # one decoder layer: every student layer is distilled towards the teacher's final output
    teacher = tiny(0, dec_layers=1).eval()
    student = copy.deepcopy(teacher).train()   # training outputs for the base loss...
    for module in student.modules():            # ...with the teacher's normalisation statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
    terms, _ = distill_terms(student, teacher)
    assert set(terms) == {"loss_distill_class", "loss_distill_bbox", "loss_distill_giou", "loss_distill_enc",
                          "loss_distill_srcs",
                          "loss_distill_dsrcs", "loss_distill_proj0", "loss_distill_dsrcs_kl", "loss_distill_proj1"}
    for name, value in terms.items():
        assert abs(value.item()) < 1e-5, (name, value.item())


def test_every_term_is_positive_for_another_student_and_gradients_reach_only_the_student():
    teacher, student = tiny(0), tiny(1).train()
    terms, losses = distill_terms(student, teacher)
    for name, value in terms.items():
        assert value.item() > 1e-6, (name, value.item())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    grads = {n: p.grad for n, p in student.named_parameters()}
    assert grads["encoder.input_proj.0.conv.weight"].abs().sum() > 0
    assert grads["backbone.conv1.conv1_1.conv.weight"].abs().sum() > 0
    assert not teacher.training     # the trainer's criterion.train() leaves the teacher in eval mode


def test_distillation_loss_coef_scales_every_added_term():
    teacher = tiny(0)
    one, _ = distill_terms(tiny(1).train(), teacher, coef=1.0)
    three, _ = distill_terms(tiny(1).train(), teacher, coef=3.0)
    for name in one:
        assert three[name].item() == pytest.approx(3.0 * one[name].item(), rel=1e-4), name


def test_output_distillation_matches_the_teachers_confident_queries_to_the_closest_student_queries():
    teacher_logits = torch.full((1, 3, 2), -9.0)
    teacher_logits[0, 0, 1] = 3.0                         # one confident query: class 1 at the box below
    teacher_boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1]]])
    student_logits = torch.full((1, 2, 2), -9.0, requires_grad=True)
    student_boxes = torch.tensor([[[0.2, 0.8, 0.3, 0.3], [0.52, 0.5, 0.2, 0.2]]], requires_grad=True)
    terms = output_distillation(student_logits, student_boxes, teacher_logits, teacher_boxes, score_threshold=0.3)
    assert terms["bbox"].item() == pytest.approx(0.02, abs=1e-5)   # matched to student query 1, not 0
    sum(terms.values()).backward()
    assert student_logits.grad[0, 1, 1] < 0                         # raise the class-1 score of that query
    assert student_logits.grad[0, 0].abs().sum() == 0               # the unmatched query is left to the GT loss


def test_iou_mask_highlights_the_cells_the_good_queries_look_like():
    feats = torch.zeros(1, 4, 2, 2)
    feats[0, 0, 0, 0] = 1.0                               # cell (0,0) looks like query 0
    feats[0, 1, 1, 1] = 1.0                               # cell (1,1) looks like query 1
    queries = torch.eye(4)[:2][None]                      # [1, 2, 4]
    mask = query_mask(feats, queries, torch.tensor([[0.9, 0.1]]))
    assert mask[0, 0, 0, 0] == 1.0 and mask[0, 0, 1, 1] == pytest.approx(0.1 / 0.9)
    assert mask[0, 0, 0, 1] == pytest.approx(1e-2 / 0.9)  # background keeps TAO's small floor


def test_query_quality_is_score_times_best_iou_with_the_ground_truth():
    scores = torch.tensor([[0.8, 0.5]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.05, 0.05]]])
    quality = query_quality(scores, boxes, [torch.tensor([[0.5, 0.5, 0.2, 0.2]])])
    assert quality[0, 0].item() == pytest.approx(0.8) and quality[0, 1].item() == pytest.approx(0.0)


def test_feature_criteria_are_zero_on_equal_maps_and_positive_otherwise():
    a, b = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    for criterion in ("L1", "L2", "KL"):
        assert feature_loss(criterion, [a], [a]).item() == pytest.approx(0.0, abs=1e-6)
        assert feature_loss(criterion, [a], [b]).item() > 0
    queries, quality = torch.randn(2, 5, 8), torch.rand(2, 5)
    assert iou_feature_loss([a], [a], queries, quality).item() == 0.0
    assert iou_feature_loss([a], [b], queries, quality).item() > 0


def test_srcs_tap_is_the_encoders_input_projections_after_aifi():
    model = tiny(0).eval()
    taps, selection = FeatureTaps(model, ["srcs", "dsrcs"], only_with_grad=False), QuerySelectionTap(model)
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        model(images)
        feats = model.backbone(images)
        expected_dsrcs = model.encoder(feats)
        projected = [proj(f) for proj, f in zip(model.encoder.input_proj, feats)]
    srcs = taps["srcs"]
    assert [tuple(s.shape) for s in srcs] == [(1, 32, 8, 8), (1, 32, 4, 4), (1, 32, 2, 2)]
    torch.testing.assert_close(srcs[0], projected[0])            # levels without AIFI: the projection
    assert not torch.allclose(srcs[2], projected[2])              # the AIFI level: the transformer's output
    for got, want in zip(taps["dsrcs"], expected_dsrcs):
        torch.testing.assert_close(got, want)
    assert selection.queries.shape == (1, 20, 32) and selection.boxes.shape == (1, 20, 4)
    assert selection.scores.shape == (1, 20) and bool(((selection.scores >= 0) & (selection.scores <= 1)).all())
    taps.remove()
    selection.remove()


def test_the_student_decodes_from_the_teachers_selection_so_query_i_meets_query_i():
    teacher = tiny(0).eval()
    tap = DecoderTap(teacher, only_with_grad=False)
    with torch.no_grad():
        out = teacher(torch.rand(2, 3, 64, 64))
        boxes, logits = decode_from(teacher, tap, tap.topk(), tap.start_boxes)
    # the teacher decoding from its own selection reproduces its own predictions, query by query
    torch.testing.assert_close(logits[-1], out["pred_logits"])
    torch.testing.assert_close(boxes[-1], out["pred_boxes"])
    terms = aligned_distillation(logits, boxes, out["pred_logits"], out["pred_boxes"], tap.enc_logits, tap.enc_logits)
    assert all(abs(v.item()) < 1e-5 for v in terms.values()), terms
    shuffled = aligned_distillation(logits, boxes[:, :, torch.randperm(20)], out["pred_logits"], out["pred_boxes"])
    assert shuffled["bbox"].item() > 0.01          # the same boxes in another order are not the teacher's
    tap.remove()


def test_l1_and_l2_feature_terms_do_not_grow_with_the_scale_of_the_features():
    a, b = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    scale = torch.rand(1, 8, 1, 1) * 100          # another network's channels: same pattern, other scale
    for criterion in ("L1", "L2"):
        assert feature_loss(criterion, [a * scale], [b]).item() == pytest.approx(
            feature_loss(criterion, [a], [b]).item(), rel=1e-3)
        assert feature_loss(criterion, [a * scale], [a]).item() < 1e-4
