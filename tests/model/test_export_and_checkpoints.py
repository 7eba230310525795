"""The forward pass exports to ONNX; checkpoints load safely; official weights import exactly."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from automl.cli import main
from trainers.errors import UserError
from trainers.rtdetr import load_model
from trainers.rtdetr.checkpoint import load_checkpoint, save_checkpoint
from trainers.rtdetr.config.model import ModelConfig
from trainers.rtdetr.model import build_model

TINY = dict(backbone="resnet_18", hidden_dim=32, feat_channels=[32, 32, 32], nheads=2, dim_feedforward=64,
            dec_layers=2, num_queries=20, num_select=20, expansion=0.5, dn_number=8)


def tiny_model(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**{**TINY, **overrides}), num_classes=4)
    with torch.no_grad():  # non-degenerate heads: distinct scores, no top-k ties between runtimes
        for head in model.decoder.dec_score_head:
            head.bias.normal_(-4.0, 1.0)
        for head in model.decoder.dec_bbox_head:
            head.layers[-1].weight.normal_(0.0, 0.1)
    return model.eval()


def test_forward_exports_to_onnx_opset17_and_onnxruntime_agrees(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = tiny_model()
    images = torch.rand(2, 3, 128, 128)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (images,), str(path), opset_version=17, dynamo=False, input_names=["images"],
                      output_names=["pred_logits", "pred_boxes"], dynamic_axes={"images": {0: "batch"}})
    import onnx

    onnx.checker.check_model(str(path))
    assert onnx.load(str(path)).opset_import[0].version == 17
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, boxes = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = model(images)
    np.testing.assert_allclose(logits, expected["pred_logits"].numpy(), atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(boxes, expected["pred_boxes"].numpy(), atol=1e-3, rtol=1e-3)


def test_repvgg_fusion_keeps_the_outputs():
    model = tiny_model()
    images = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        before = model(images)
        after = model.fuse_for_deploy()(images)
    torch.testing.assert_close(after["pred_logits"], before["pred_logits"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layout", ["v2_ema", "v1_model"])
def test_official_checkpoints_import_exactly(tmp_path, layout):
    model = tiny_model(seed=3)
    state = model.state_dict()
    if layout == "v1_model":  # v1 names its projections by Sequential index
        renamed = {}
        for key, value in state.items():
            for old, new in ((".conv.", ".0."), (".norm.", ".1.")):
                if key.startswith(("encoder.input_proj.", "decoder.input_proj.")):
                    key = key.replace(old, new, 1) if key.count(".") == 4 else key
            key = key.replace("decoder.enc_output.proj.", "decoder.enc_output.0.")
            key = key.replace("decoder.enc_output.norm.", "decoder.enc_output.1.")
            renamed[key] = value
        payload = {"model": renamed}
    else:
        payload = {"ema": {"module": state, "updates": 10}}
    source = tmp_path / "official.pth"
    torch.save(payload, source)
    out = tmp_path / "ours.pth"
    assert main(["import-weights", "--skill", "rtdetr", "--source", "official", "--input", str(source),
                 "--output", str(out), "nheads=2", "num_queries=20", "dn_number=8"]) == 0
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(load_model(out)(images)["pred_boxes"], model(images)["pred_boxes"])


def test_checkpoints_load_with_weights_only_and_a_pickle_payload_is_refused(tmp_path):
    path = save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "ok.pth")
    assert torch.load(path, weights_only=True)["epoch"] == 3
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was renamed into place"

    class Payload:
        def __reduce__(self):
            return (print, ("code from the checkpoint ran",))

    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as handle:
        pickle.dump({"model": Payload()}, handle)
    with pytest.raises(UserError, match="refused to load"):
        load_checkpoint(evil)


def test_import_weights_reports_bad_input_in_one_line(tmp_path, capsys):
    (tmp_path / "hf").mkdir()
    code = main(["import-weights", "--skill", "rtdetr", "--source", "hf", "--input", str(tmp_path / "hf"),
                 "--output", str(tmp_path / "x.pth")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no config.json" in err and len(err.splitlines()) == 1


def test_more_queries_than_encoder_positions_is_one_line_naming_num_queries():
    # 64x64 with strides 8/16/32 gives 64 + 16 + 4 = 84 positions to select queries from.
    model = tiny_model(num_queries=100, num_select=100)
    with pytest.raises(UserError, match=r"model.num_queries: 100 queries .* gives 84 .* at most 84 queries"):
        model(torch.rand(1, 3, 64, 64))
    assert model(torch.rand(1, 3, 96, 96))["pred_logits"].shape == (1, 100, 4), "189 positions are enough"
