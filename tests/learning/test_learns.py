"""Proof that training learns: the tiny preset, trained from scratch through the real trainer on drawn shapes,
finds them far above chance.

Chance here is ~0 val_mAP50 (a random network's 50 boxes rarely overlap a shape
at IoU 0.5 with the right class), so > 0.2 can only come from learning: measured
0.273 after 15 epochs (a 5-epoch student in the distillation test: 0.068).  The
set uses sparse category ids (201, 305, 412): a trainer that used ids as labels
would crash or score 0.  The model is trained once for the session
(tests/learning/trained_shapes.py) and is also the distillation test's teacher.
"""
import json

import pytest

from trainers.rtdetr.checkpoint import load_checkpoint

from .synthetic_shapes import CATEGORIES
from .trained_shapes import EPOCHS

CHANCE_MARGIN_MAP50 = 0.2


@pytest.mark.slow
def test_tiny_preset_learns_drawn_shapes_with_sparse_category_ids(shapes_model):
    summary, train_dir = shapes_model["summary"], shapes_model["train_dir"]
    print(f"learning test: {EPOCHS} epochs, best val_mAP50 {summary['val_mAP50']:.3f}")

    assert summary["val_mAP50"] > CHANCE_MARGIN_MAP50, summary
    records = [json.loads(line) for line in (train_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(EPOCHS))
    assert records[-1]["loss"] < records[0]["loss"]
    checkpoint = load_checkpoint(train_dir / "model_best.pth")
    assert checkpoint["category_ids"] == [cid for cid, _ in CATEGORIES]   # labels map back to the sparse ids
