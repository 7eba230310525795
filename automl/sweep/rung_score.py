"""The score a rung ranks a trial by: its metric, with trials that found nothing yet ordered by loss.

Early in training a detector's val_mAP50 is often exactly 0 (no box is right at IoU 0.5 yet), for a
trial that is about to learn and for one that never will alike.  Ray's rung rule continues a trial whose
score is not below the rung's top-1/eta cutoff, so when most of a rung is 0 the cutoff is 0 and every
zero goes on: on a wide learning-rate range, configurations that learn nothing at all (lr 1e-8) would
train past the first rung beside those that had begun to learn (at grace 1 and reduction factor 3, three
epochs where a probe should cost one).  Their training losses still tell them apart (bench_sweep part 2,
lr over [1e-8, 1e-1], epoch 1: 28.0-28.2 never learning, 30.6-61.5 diverging, 22.6-27.9 learning), so a zero
is ranked below every score above 0 and, among zeros, by its epoch's training loss (lower first): the
top 1/eta of a rung of zeros is its fastest learners.  Scores above 0 keep their order exactly; a result
without a finite loss keeps its 0.
"""
from __future__ import annotations

import math
from typing import Any, Dict

LOSS = "loss"   # the trainer's mean training loss of the epoch (metrics.jsonl)


def rung_result(result: Dict[str, Any], metric: str, mode: str) -> Dict[str, Any]:
    """``result`` as a scheduler should rank it: a maximised metric at exactly 0 becomes a small negative
    number that falls with the training loss, in (-1e-9, 0): below every real score, ordered among zeros.
    The result a trial reported is not changed (trials.csv, MLflow and the searcher see the metric)."""
    value, loss = result.get(metric), result.get(LOSS)
    if mode != "max" or value != 0 or not isinstance(loss, (int, float)) or not math.isfinite(loss) or loss < 0:
        return result
    return {**result, metric: -1e-9 * loss / (1.0 + loss)}
