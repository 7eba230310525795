"""train(cfg): the results folder, resume, the finite-loss guard, accumulation, freezing, bf16."""
import json

import pytest
import torch

from trainers.rtdetr.checkpoint import load_checkpoint
from trainers.rtdetr.engine import run_files
from trainers.rtdetr.engine.loop import NonFiniteLossError, train_one_epoch
from trainers.rtdetr.engine.optim import build_lr_scheduler, build_optimizer
from trainers.rtdetr.engine.precision import make_grad_scaler
from trainers.rtdetr.engine.trainer import train

from .toy_detector import toy_config, toy_parts

CPU = torch.device("cpu")


def test_a_run_leaves_taos_results_folder(tmp_path):
    cfg = toy_config(tmp_path, checkpoint_interval=2, enable_ema=True, optim__warmup_steps=3)
    summary = train(cfg, toy_parts(), log=lambda line: None)
    out = tmp_path / "train"
    names = sorted(p.name for p in out.iterdir() if p.suffix == ".pth")
    assert names == ["model_best.pth", "model_epoch_001.pth", "model_epoch_002.pth", "model_latest.pth"]
    assert load_checkpoint(out / "model_epoch_001.pth")["epoch"] == 1   # not overwritten by the later epochs

    records = [json.loads(line) for line in (out / "status.json").read_text().splitlines()]
    assert [r["status"] for r in records] == ["STARTED", "RUNNING", "RUNNING", "RUNNING", "SUCCESS"]
    assert [r["epoch"] for r in records[1:4]] == [0, 1, 2] and records[1]["max_epoch"] == 3
    assert all(isinstance(v, str) for r in records[1:4] for v in r["kpi"].values())
    assert float(records[3]["kpi"]["val_mAP50"]) >= 0.0

    metrics = run_files.read_jsonl(out / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == [0, 1, 2]
    for key in ("loss", "loss_cls", "loss_bbox", "lr", "val_mAP", "val_mAP50", "val_mAP75", "wall_seconds"):
        assert all(m[key] is not None for m in metrics), key

    best = load_checkpoint(out / "model_best.pth")
    assert best["epoch"] == summary["best_epoch"]
    assert best["best_metric"] == pytest.approx(summary["val_mAP50"])
    assert summary["val_mAP50"] == max(m["val_mAP50"] for m in metrics)
    latest = load_checkpoint(out / "model_latest.pth")
    assert set(latest) >= {"model", "train_model", "ema", "optimizer", "lr_scheduler", "rng", "epoch",
                           "category_ids", "class_names", "num_classes", "model_config"}
    assert latest["category_ids"] == [5, 9] and latest["num_classes"] == 2 and latest["epoch"] == 2
    assert not torch.equal(latest["model"]["class_head.weight"], latest["train_model"]["class_head.weight"])


class Interrupt(Exception):
    pass


def stop_after(epoch):
    def callback(record):
        if record["epoch"] == epoch:
            raise Interrupt()
    return callback


def resume_settings():
    return dict(num_epochs=4, enable_ema=True, grad_accumulation_steps=2, optim__warmup_steps=2,
                optim__lr_scheduler="cosine", validation_interval=2, checkpoint_interval=1)


@pytest.mark.slow
def test_resuming_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    quiet = lambda line: None  # noqa: E731
    train(toy_config(tmp_path / "straight", **resume_settings()), toy_parts(), log=quiet)

    interrupted = toy_config(tmp_path / "resumed", **resume_settings())
    with pytest.raises(Interrupt):
        train(interrupted, toy_parts(), on_epoch_end=stop_after(1), log=quiet)
    status = (tmp_path / "resumed/train/status.json").read_text().splitlines()
    assert json.loads(status[-1])["status"] == "FAILURE"
    train(interrupted, toy_parts(), log=quiet)           # picks up model_latest.pth by itself

    explicit = toy_config(tmp_path / "explicit", **resume_settings(),
                          resume_training_checkpoint_path=str(tmp_path / "resumed/train/model_epoch_001.pth"))
    train(explicit, toy_parts(), log=quiet)

    straight = load_checkpoint(tmp_path / "straight/train/model_latest.pth")
    for name in ("resumed", "explicit"):
        other = load_checkpoint(tmp_path / name / "train/model_latest.pth")
        for key in ("model", "train_model"):
            for tensor_name, tensor in straight[key].items():
                assert torch.equal(tensor, other[key][tensor_name]), (name, key, tensor_name)
        assert other["global_step"] == straight["global_step"] == 8
    resumed_metrics = run_files.read_jsonl(tmp_path / "resumed/train/metrics.jsonl")
    straight_metrics = run_files.read_jsonl(tmp_path / "straight/train/metrics.jsonl")
    assert [m["epoch"] for m in resumed_metrics] == [0, 1, 2, 3]
    assert [m["loss"] for m in resumed_metrics] == [m["loss"] for m in straight_metrics]


def test_a_nan_loss_stops_training_naming_the_epoch_and_step(tmp_path):
    cfg = toy_config(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 2 .*loss_bbox=nan"):
        train(cfg, toy_parts(nan_at_call=7), log=lambda line: None)      # 4 batches an epoch: call 7 = epoch 1 step 2
    last = json.loads((tmp_path / "train/status.json").read_text().splitlines()[-1])
    assert last["status"] == "FAILURE" and "epoch 1, step 2" in last["message"]


def one_step_weights(batch_size, accumulation):
    parts = toy_parts(train_images=4, batch_size=batch_size, batch_norm=False, shuffle=False, dropout=0.0)
    cfg = toy_config("unused").train.optim
    optimizer = build_optimizer(parts.model, cfg)
    scheduler = build_lr_scheduler(optimizer, cfg, iters_per_epoch=1, num_epochs=1)
    train_one_epoch(model=parts.model, criterion=parts.criterion, optimizer=optimizer, lr_scheduler=scheduler,
                    grad_scaler=make_grad_scaler("fp32", CPU), ema=None, loader=parts.train_loader, device=CPU,
                    precision="fp32", epoch=0, global_step=0, accumulation_steps=accumulation, clip_grad_norm=0.1,
                    show_progress=False)
    return parts.model.state_dict()


def test_two_accumulated_batches_of_two_equal_one_batch_of_four():
    accumulated, whole = one_step_weights(2, 2), one_step_weights(4, 1)
    for name, tensor in whole.items():
        assert torch.allclose(accumulated[name], tensor, atol=1e-6), name


def test_train_backbone_false_leaves_the_backbone_untouched(tmp_path):
    cfg = toy_config(tmp_path, num_epochs=1)
    cfg.model.train_backbone = False
    parts = toy_parts()
    before = {k: v.clone() for k, v in parts.model.backbone.state_dict().items()}
    train(cfg, parts, log=lambda line: None)
    for name, tensor in parts.model.backbone.state_dict().items():
        assert torch.equal(tensor, before[name]), name          # weights and BatchNorm statistics


def test_bf16_trains_on_the_cpu_and_dry_run_trains_nothing(tmp_path):
    summary = train(toy_config(tmp_path / "bf16", num_epochs=1, precision="bf16"), toy_parts(), log=lambda l: None)
    assert summary["epochs_run"] == 1 and summary["last"]["loss"] > 0
    dry = train(toy_config(tmp_path / "dry", is_dry_run=True), toy_parts(), log=lambda line: None)
    assert dry["epochs_run"] == 0
    assert json.loads((tmp_path / "dry/train/status.json").read_text().splitlines()[-1])["status"] == "SUCCESS"


def _train_worker(rank, port, results_dir):
    import os

    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from .toy_detector import collate

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"})
    parts = toy_parts()
    for name in ("train_loader", "val_loader"):
        dataset = getattr(parts, name).dataset
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=name == "train_loader", seed=1)
        setattr(parts, name, DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=collate))
    train(toy_config(results_dir, num_epochs=2, enable_ema=True), parts, log=lambda line: None)


@pytest.mark.slow
def test_two_gloo_processes_train_and_only_rank_zero_writes(tmp_path):
    import torch.multiprocessing as mp

    from .test_distributed import free_port

    mp.spawn(_train_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    out = tmp_path / "train"
    statuses = [json.loads(line)["status"] for line in (out / "status.json").read_text().splitlines()]
    assert statuses == ["STARTED", "RUNNING", "RUNNING", "SUCCESS"]
    assert [m["epoch"] for m in run_files.read_jsonl(out / "metrics.jsonl")] == [0, 1]
    latest = load_checkpoint(out / "model_latest.pth")
    assert len(latest["rng"]) == 2 and latest["global_step"] == 4      # 8 images, 2 ranks x batch 2


def test_resuming_with_a_model_that_does_not_fit_is_a_user_error(tmp_path):
    from trainers.errors import UserError

    from .toy_detector import ToyDetector

    train(toy_config(tmp_path, num_epochs=1), toy_parts(), log=lambda line: None)
    parts = toy_parts()
    parts.model = ToyDetector(num_classes=3)
    with pytest.raises(UserError, match="cannot resume from .*model_latest.pth"):
        train(toy_config(tmp_path, num_epochs=2), parts, log=lambda line: None)


def test_a_finished_run_resumed_again_trains_nothing_and_reports_its_last_epoch(tmp_path):
    train(toy_config(tmp_path, num_epochs=1), toy_parts(), log=lambda line: None)
    again = train(toy_config(tmp_path, num_epochs=1), toy_parts(), log=lambda line: None)
    assert again["epochs_run"] == 0 and again["last"]["epoch"] == 0 and again["best_epoch"] == 0
