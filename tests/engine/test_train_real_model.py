"""The engine with the real RT-DETR model and data pipeline: a tiny model, a few raccoon images, one epoch."""
import json
from pathlib import Path

import pytest

from trainers.rtdetr.checkpoint import load_checkpoint
from trainers.rtdetr.config import ExperimentConfig
from trainers.rtdetr.engine.evaluation import evaluate_checkpoint
from trainers.rtdetr.engine.trainer import train

RACCOON = Path(__file__).resolve().parents[2] / "examples" / "raccoon"


def first_images(name: str, count: int, folder: Path) -> str:
    data = json.loads((RACCOON / "annotations" / name).read_text())
    data["images"] = data["images"][:count]
    kept = {image["id"] for image in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in kept]
    path = folder / name
    path.write_text(json.dumps(data))
    return str(path)


def tiny_spec(tmp_path: Path) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.results_dir = str(tmp_path / "results")
    model = cfg.model
    model.backbone, model.hidden_dim, model.dim_feedforward, model.nheads = "resnet_18", 32, 64, 2
    model.dec_layers, model.feat_channels, model.num_queries, model.num_select = 1, [32, 32, 32], 20, 20
    model.dn_number, model.expansion, model.depth_mult = 4, 0.5, 0.34
    dataset = cfg.dataset
    images = str(RACCOON / "images")
    dataset.train_data_sources[0].image_dir = images
    dataset.train_data_sources[0].json_file = first_images("train.json", 4, tmp_path)
    val_json = first_images("val.json", 2, tmp_path)
    dataset.val_data_sources.image_dir = dataset.test_data_sources.image_dir = images
    dataset.val_data_sources.json_file = dataset.test_data_sources.json_file = val_json
    dataset.num_classes, dataset.batch_size, dataset.workers = 1, 2, 0
    dataset.augmentation.multi_scales = [64]
    dataset.augmentation.train_spatial_size = dataset.augmentation.eval_spatial_size = [64, 64]
    cfg.train.num_epochs, cfg.train.enable_ema = 1, True
    return cfg


@pytest.mark.slow
@pytest.mark.skipif(not RACCOON.is_dir(), reason="examples/raccoon is not there")
def test_train_then_evaluate_with_the_real_model(tmp_path, capsys):
    cfg = tiny_spec(tmp_path)
    summary = train(cfg, log=lambda line: None)
    assert summary["epochs_run"] == 1 and summary["last"]["loss"] > 0
    checkpoint = load_checkpoint(tmp_path / "results/train/model_best.pth")
    assert checkpoint["category_ids"] == [1] and checkpoint["class_names"] == ["raccoon"]

    cfg.evaluate.checkpoint = str(tmp_path / "results/train/model_best.pth")
    metrics = evaluate_checkpoint(cfg)
    written = json.loads((tmp_path / "results/evaluate/results.json").read_text())
    assert written["test_mAP50"] == metrics["test_mAP50"] and "AP50" in written and "per_class" in written
    assert "raccoon" in capsys.readouterr().out

    cfg.model.hidden_dim = 64                   # a spec that no longer matches: the saved settings are used
    again = evaluate_checkpoint(cfg, log=lambda line: None)
    assert again["test_mAP50"] == metrics["test_mAP50"]
