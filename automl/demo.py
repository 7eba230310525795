"""``make demo``: a real small sweep of the embedded raccoon example on this machine's CPUs.

Several ASHA trials (TPE sampling, the schema's default space minus the keys
that change a trial's cost) of a small RT-DETR, tracked in MLflow; the winner
is exported to ONNX and checked in ONNX Runtime.  It runs the command a user
would type and ends by saying how to open the MLflow UI and where the model is.
A second ``make demo`` starts a fresh sweep; the previous one is kept in
``runs/demo.previous`` (one generation).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from automl.cli import exit_now, main as cli

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "raccoon_sweep.yaml"
DATA = ROOT / "examples" / "raccoon"


def main() -> int:
    results = ROOT / "runs" / "demo"
    if results.exists():
        previous = results.with_name("demo.previous")
        shutil.rmtree(previous, ignore_errors=True)
        shutil.move(str(results), str(previous))
        print(f"(the previous demo's results are in {previous})", flush=True)
    images, annotations = DATA / "images", DATA / "annotations"
    command = ["sweep", "--skill", "rtdetr", "-e", str(SPEC), f"results_dir={results}",
               f"dataset.train_data_sources.0.image_dir={images}",
               f"dataset.train_data_sources.0.json_file={annotations / 'train.json'}",
               f"dataset.val_data_sources.image_dir={images}",
               f"dataset.val_data_sources.json_file={annotations / 'val.json'}",
               f"dataset.test_data_sources.image_dir={images}",
               f"dataset.test_data_sources.json_file={annotations / 'val.json'}"]
    print("== tao-automl sweep: ASHA + TPE over the rtdetr schema's AutoML space, raccoon set, CPU ==", flush=True)
    print("   " + " ".join(["tao-automl", *command[:4], "..."]), flush=True)
    code = cli(command)
    if code:
        return code
    automl = results / "automl"
    print(f"\nOpen the MLflow UI:   .venv/bin/tao-automl ui {results}   (then http://127.0.0.1:5000)")
    print(f"Exported best model:  {automl / 'export' / 'model.onnx'}")
    print(f"Retrain the winner:   .venv/bin/tao-automl train --skill rtdetr -e {automl / 'best_spec.yaml'}")
    return 0


if __name__ == "__main__":
    exit_now(main())
