"""status.json, metrics.jsonl, checkpoint names and checkpoint files, written atomically."""
import json
import os

import torch

from trainers.rtdetr.checkpoint import load_checkpoint, save_checkpoint
from trainers.rtdetr.engine import run_files


def test_status_log_matches_taos_shape_with_string_kpis(tmp_path):
    log = run_files.StatusLog(tmp_path / "status.json", max_epoch=10)
    log.write("STARTED", "Starting training")
    log.write("RUNNING", "Epoch 2 done", epoch=2, kpi={"val_mAP": 0.25, "val_mAP50": 0.5}, time_per_epoch=12.0)
    log.write("SUCCESS", "Training finished")
    lines = (tmp_path / "status.json").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["status"] for r in records] == ["STARTED", "RUNNING", "SUCCESS"]
    epoch = records[1]
    assert epoch["epoch"] == 2 and epoch["max_epoch"] == 10
    assert epoch["kpi"] == {"val_mAP": "0.25", "val_mAP50": "0.5"}
    assert float(epoch["time_per_epoch"]) == 12.0 and float(epoch["eta"]) == 7 * 12.0
    assert {"date", "time", "verbosity", "message"} <= set(epoch)


def test_jsonl_append_keeps_earlier_lines_and_writes_nan_as_null(tmp_path):
    path = tmp_path / "metrics.jsonl"
    run_files.append_jsonl_atomic(path, {"epoch": 0, "loss": 1.5, "val_mAP50": None})
    run_files.append_jsonl_atomic(path, {"epoch": 1, "loss": float("nan"), "val_mAP50": 0.3})
    assert run_files.read_jsonl(path) == [{"epoch": 0, "loss": 1.5, "val_mAP50": None},
                                          {"epoch": 1, "loss": None, "val_mAP50": 0.3}]
    run_files.truncate_jsonl(path, keep=lambda r: r["epoch"] < 1)
    assert [r["epoch"] for r in run_files.read_jsonl(path)] == [0]


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    run_files.write_json_atomic(tmp_path / "results.json", {"AP": 0.5})
    run_files.write_json_atomic(tmp_path / "results.json", {"AP": 0.6})
    assert json.loads((tmp_path / "results.json").read_text()) == {"AP": 0.6}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_checkpoint_names_and_train_folder(tmp_path):
    assert run_files.epoch_checkpoint_name(7) == "model_epoch_007.pth"
    assert run_files.epoch_checkpoint_name(120) == "model_epoch_120.pth"
    assert run_files.train_dir(tmp_path) == tmp_path / "train"
    assert run_files.train_dir(tmp_path, str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"


def test_one_checkpoint_saved_under_several_names_is_one_file_and_a_later_save_leaves_the_others(tmp_path):
    epoch, best, latest = (tmp_path / name for name in ("model_epoch_000.pth", "model_best.pth", "model_latest.pth"))
    save_checkpoint({"epoch": 0, "weights": torch.arange(4.0)}, epoch, best, latest)
    assert {path.stat().st_ino for path in (epoch, best, latest)} == {epoch.stat().st_ino}
    assert torch.equal(load_checkpoint(best)["weights"], torch.arange(4.0))

    save_checkpoint({"epoch": 1, "weights": torch.zeros(4)}, tmp_path / "model_epoch_001.pth", latest)
    assert load_checkpoint(latest)["epoch"] == 1
    assert load_checkpoint(epoch)["epoch"] == load_checkpoint(best)["epoch"] == 0
    assert torch.equal(load_checkpoint(best)["weights"], torch.arange(4.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model_best.pth", "model_epoch_000.pth", "model_epoch_001.pth", "model_latest.pth"]


def test_where_the_filesystem_refuses_hard_links_the_other_names_are_copies(tmp_path, monkeypatch):
    def refuse(source, target):
        raise PermissionError(1, "Operation not permitted", str(target))

    monkeypatch.setattr(os, "link", refuse)
    best, latest = tmp_path / "model_best.pth", tmp_path / "model_latest.pth"
    save_checkpoint({"epoch": 3}, best, latest)
    assert best.stat().st_ino != latest.stat().st_ino and best.read_bytes() == latest.read_bytes()
    assert load_checkpoint(latest)["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_best.pth", "model_latest.pth"]
