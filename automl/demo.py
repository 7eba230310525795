"""``make demo``: a real short training run of the embedded raccoon example, then its evaluation.

Runs the same commands a user would type and prints where everything is.
"""
from __future__ import annotations

import sys
from pathlib import Path

from automl.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "raccoon_quickstart.yaml"


def main() -> int:
    results = ROOT / "runs" / "demo"
    common = ["--skill", "rtdetr", "-e", str(SPEC), f"results_dir={results}",
              f"dataset.train_data_sources.0.image_dir={ROOT / 'examples/raccoon/images'}",
              f"dataset.train_data_sources.0.json_file={ROOT / 'examples/raccoon/annotations/train.json'}",
              f"dataset.val_data_sources.image_dir={ROOT / 'examples/raccoon/images'}",
              f"dataset.val_data_sources.json_file={ROOT / 'examples/raccoon/annotations/val.json'}",
              f"dataset.test_data_sources.image_dir={ROOT / 'examples/raccoon/images'}",
              f"dataset.test_data_sources.json_file={ROOT / 'examples/raccoon/annotations/val.json'}"]
    print("== tao-automl train (2 epochs of a small RT-DETR on the raccoon set, CPU) ==", flush=True)
    code = cli(["train", *common])
    if code:
        return code
    best = results / "train" / "model_best.pth"
    print("== tao-automl evaluate (the best checkpoint on the validation images) ==", flush=True)
    code = cli(["evaluate", *common, f"evaluate.checkpoint={best}"])
    if code:
        return code
    print(f"\nresults: {results}/train (checkpoints, metrics.jsonl, status.json), "
          f"{results}/evaluate/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
