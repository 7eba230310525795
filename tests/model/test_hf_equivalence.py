"""Our RT-DETR equals transformers' RTDetrForObjectDetection on the same weights.

Weights go through the real `tao-automl import-weights --source hf` command
and come back through `load_model`.  Two differences are on purpose and are
checked against the official lyuwenyu/RT-DETR behaviour instead:
- non-square inputs: the official AIFI position embedding is built W-outer;
  transformers 5.x builds it H-outer (identical on square maps);
- gradients between decoder layers: the official v2 decoder emits each layer's
  box through the previous layer's undetached box; transformers detaches it.
"""
from __future__ import annotations

import pytest
import torch
from scipy.optimize import linear_sum_assignment

from automl.cli import main
from trainers.rtdetr import load_model
from trainers.rtdetr.model import build_criterion
from trainers.rtdetr.config.model import ModelConfig

from .reference import hf_targets, official_position_embedding, save_hf, tiny_hf_model

pytest.importorskip("transformers")


def imported(tmp_path, hf_model):
    save_hf(hf_model, tmp_path / "hf")
    out = tmp_path / "ours.pth"
    assert main(["import-weights", "--skill", "rtdetr", "--source", "hf", "--input", str(tmp_path / "hf"),
                 "--output", str(out)]) == 0
    return load_model(out)


def assert_same_detections(ours, theirs, tol=1e-4):
    """Compare per-image sets of (logits, box) rows regardless of query order."""
    for b in range(ours["pred_logits"].shape[0]):
        a = torch.cat([ours["pred_logits"][b], ours["pred_boxes"][b]], -1)
        h = torch.cat([theirs.logits[b], theirs.pred_boxes[b]], -1)
        rows, cols = linear_sum_assignment(torch.cdist(a, h).numpy())
        diff = (a[rows] - h[cols]).abs()
        rel = (diff / h[cols].abs().clamp(min=1.0)).max().item()
        assert rel <= tol, f"image {b}: max relative difference {rel:.2e}"


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_eval_outputs_match_transformers_on_square_inputs(tmp_path, block):
    hf = tiny_hf_model(block)
    ours = imported(tmp_path, hf)
    images = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        assert_same_detections(ours(images), hf(pixel_values=images))


def test_non_square_inputs_match_the_official_position_embedding(tmp_path, monkeypatch):
    import transformers.models.rt_detr.modeling_rt_detr as hf_modeling

    hf = tiny_hf_model("basic")
    ours = imported(tmp_path, hf)
    images = torch.rand(2, 3, 96, 160)

    feature_map = torch.randn(2, 32, 3, 5)  # the stride-32 level of a 96x160 input

    def our_aifi():
        tokens = feature_map.flatten(2).transpose(1, 2)
        out = ours.encoder.encoder[0](tokens, ours.encoder.position_embedding(3, 5, tokens))
        return out.transpose(1, 2).reshape(feature_map.shape)

    with torch.no_grad():
        # transformers' own (H-outer) embedding gives other features: the documented difference
        assert (our_aifi() - hf.model.encoder.aifi[0](feature_map)).abs().max() > 1e-2
        monkeypatch.setattr(hf_modeling.RTDetrSinePositionEmbedding, "_cached_build_2d_sinusoidal_position_embedding",
                            staticmethod(official_position_embedding))
        torch.testing.assert_close(our_aifi(), hf.model.encoder.aifi[0](feature_map), rtol=1e-4, atol=1e-5)
        assert_same_detections(ours(images), hf(pixel_values=images))


def test_training_loss_terms_match_transformers_under_the_same_targets(tmp_path):
    hf = tiny_hf_model("basic", num_denoising=4)
    ours = imported(tmp_path, hf)
    model_cfg = ModelConfig(num_queries=10, num_select=10, dec_layers=2, dn_number=4)
    criterion = build_criterion(model_cfg, 3)
    targets = [{"labels": torch.tensor([0, 2]), "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.2, 0.3, 0.1, 0.2]])},
               {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.6, 0.4, 0.5, 0.5]])}]
    images = torch.rand(2, 3, 128, 128)
    hf.train()
    ours.train()
    torch.manual_seed(7)
    hf_losses = hf(pixel_values=images, labels=hf_targets(targets)).loss_dict
    torch.manual_seed(7)
    our_losses = criterion(ours(images, targets), targets)

    layers = 2
    def hf_name(name):  # transformers names the encoder top-k set as the last aux set
        return name.replace("_enc_0", f"_aux_{layers - 1}")
    assert len(our_losses) == len(hf_losses) == 3 * (1 + (layers - 1) + 1 + layers)
    for name, value in our_losses.items():
        expected = hf_losses[hf_name(name)]
        assert torch.allclose(value, expected, rtol=1e-4, atol=1e-6), f"{name}: {value.item()} vs {expected.item()}"


def test_boxes_keep_the_gradient_path_between_decoder_layers_as_the_official_decoder(tmp_path):
    hf = tiny_hf_model("basic", num_denoising=0)
    ours = imported(tmp_path, hf)
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.4]])}]
    images = torch.rand(1, 3, 64, 64)
    ours.train()
    out = ours(images, targets)
    out["dec_boxes"][1].sum().backward()  # a loss on layer 1's boxes only
    first_head = ours.decoder.dec_bbox_head[0].layers[-1].weight.grad
    assert first_head is not None and first_head.abs().sum() > 0

    hf.train()
    hf_out = hf(pixel_values=images)
    hf_out.intermediate_reference_points[:, 1].sum().backward()
    hf_first_head = hf.model.decoder.bbox_embed[0].layers[-1].weight.grad
    assert hf_first_head is None or hf_first_head.abs().sum() == 0  # transformers detaches it


def test_transformers_4x_key_names_import_the_same_model(tmp_path):
    """Hub checkpoints were saved by transformers 4.x (encoder.encoder.N, out_proj, fc1/fc2 without mlp.)."""
    from safetensors.torch import load_file, save_file

    hf = tiny_hf_model("bottleneck")
    save_hf(hf, tmp_path / "v5")
    state = load_file(str(tmp_path / "v5" / "model.safetensors"))
    renames = [(".aifi.", ".encoder."), (".o_proj.", ".out_proj."), (".mlp.fc1.", ".fc1."), (".mlp.fc2.", ".fc2.")]
    old_state = {}
    for key, value in state.items():
        for new, old in renames:
            key = key.replace(new, old)
        old_state[key] = value.contiguous()
    (tmp_path / "v4").mkdir()
    save_file(old_state, str(tmp_path / "v4" / "model.safetensors"))
    (tmp_path / "v4" / "config.json").write_text((tmp_path / "v5" / "config.json").read_text())
    out = tmp_path / "from_v4.pth"
    assert main(["import-weights", "--skill", "rtdetr", "--source", "hf", "--input", str(tmp_path / "v4"),
                 "--output", str(out)]) == 0
    images = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        assert_same_detections(load_model(out)(images), hf(pixel_values=images))
