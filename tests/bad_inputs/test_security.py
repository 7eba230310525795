"""Security properties: checkpoints load with weights_only=True, archives extract only through the checked
path, the MLflow UI binds 127.0.0.1 by default, secrets never reach MLflow in clear."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CODE = [p for folder in ("automl", "trainers", "search_spaces", "benchmarks") for p in (ROOT / folder).rglob("*.py")]


def _calls(name: str):
    """(file, call) for every call of an attribute named ``name`` in the code base (tests excluded)."""
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
                yield path.relative_to(ROOT), node


def test_every_torch_load_is_weights_only():
    loads = [(path, call) for path, call in _calls("load")
             if isinstance(call.func.value, ast.Name) and call.func.value.id == "torch"]
    assert loads, "torch.load is used somewhere (checkpoint.py)"
    unsafe = [f"{path}:{call.lineno}" for path, call in loads
              if not any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                         for k in call.keywords)]
    assert not unsafe, f"torch.load without weights_only=True: {unsafe}"


def test_archives_are_extracted_only_by_the_checked_extractor():
    callers = {str(path) for path, _ in _calls("extractall")} | {str(path) for path, _ in _calls("extract")}
    assert callers == {"trainers/rtdetr/data/sources.py"}, callers


def test_the_mlflow_ui_binds_localhost_unless_asked(tmp_path):
    from automl.cli import build_parser

    args = build_parser().parse_args(["ui", str(tmp_path)])
    assert args.host == "127.0.0.1"
    assert build_parser().parse_args(["ui", str(tmp_path), "--host", "0.0.0.0"]).host == "0.0.0.0"


@pytest.mark.slow   # creating the MLflow database takes seconds
def test_secrets_in_the_spec_never_reach_mlflow_in_clear(tmp_path):
    from automl.sweep.tracking import SweepTracker

    secret = "s3cret-value-42"
    spec = {"encryption_key": secret, "train": {"optim": {"lr": 0.001}},
            "dataset": {"hub": {"token": secret, "api_key": secret}}}
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracker.start_sweep("sweep-1", run_name="s", spec=spec, space={"parameters": []},
                        settings={"metric": "val_mAP50", "hf_token": secret})
    tracker.start_trial("t1", {"train.optim.lr": 0.001})
    tracker.finish_trial("t1", status="completed", best_value=0.5, best_epoch=0, epochs_run=1, wall_seconds=1.0)
    best_spec = tmp_path / "best_spec.yaml"   # the sweep logs its best spec as an artifact
    best_spec.write_text(yaml.safe_dump(spec))
    tracker.finish_sweep(best={"trial_id": "t1", "value": 0.5, "epoch": 0}, artifacts=[best_spec])

    stored = [(tmp_path / "mlflow.db").read_bytes()]
    stored += [p.read_bytes() for p in (tmp_path / "mlartifacts").rglob("*") if p.is_file()]
    assert not [blob for blob in stored if secret.encode() in blob], "a secret reached MLflow in clear"
    assert any(b"*****" in blob for blob in stored)
