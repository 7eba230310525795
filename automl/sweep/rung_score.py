"""The score a rung ranks a trial by: its metric, with trials that found next to nothing yet ordered by loss.

Early in training a detector's val_mAP50 is 0 or a few chance matches (no box is right at IoU 0.5 yet),
for a trial that is about to learn and for one that never will alike.  Those scores order trials by
noise, and Ray's rung rule continues a trial whose score is not below the rung's top-1/eta cutoff, so on
a wide learning-rate range configurations that learn nothing (lr 1e-8) went on beside those that had
begun to learn: bench_sweep part 2 (lr and lr_backbone over [1e-8, 1e-1]) measured dead trials at 0.0003
to 0.0016 val_mAP50 training 9 and 14 epochs where a probe costs one, while the configuration random
search won with had scored 0.0027 at epoch 1.  Their training losses tell them apart (epoch 1: 28.0-28.8
never learning, 30.6-61.5 diverging, 22.6-27.9 learning): over that task's 24 full random-search curves
the epoch-1 score ranks trials for their best with Spearman 0.47, the epoch-1 loss with 0.90.

So a maximised metric below :data:`NOISE_FLOOR` ranks below every score at or above it and, among such
scores, by its epoch's training loss (lower first): the top 1/eta of a rung of near-zeros is its fastest
learners.  Scores at or above the floor keep their order exactly; a result without a finite loss keeps
its score.  Where the first scores clear the floor this changes nothing (the other part-2 task, lr over
[1e-5, 1e-1]: Spearman 0.56 by score, 0.55 with the floor).
"""
from __future__ import annotations

import math
from typing import Any, Dict

LOSS = "loss"   # the trainer's mean training loss of the epoch (metrics.jsonl)
# Below this a maximised detection metric (mAP, AR: fractions of 1) is chance matches.  An order of
# magnitude above the best a trial that learned nothing scored in 27 epochs (0.0016), and under the
# epoch-1 scores of most trials that went on to learn (0.01-0.06); those under it are ranked by loss.
NOISE_FLOOR = 0.01


def rung_result(result: Dict[str, Any], metric: str, mode: str) -> Dict[str, Any]:
    """``result`` as a scheduler (and the sampler, for trials it stopped) should rank it: a maximised metric
    below NOISE_FLOOR becomes a small negative number that falls with the training loss, in (-1e-9, 0]:
    below every score at or above the floor, ordered among those under it.  The result a trial reported
    is not changed (trials.csv, MLflow and the best trial see the metric)."""
    value, loss = result.get(metric), result.get(LOSS)
    if (mode != "max" or not isinstance(value, (int, float)) or not value < NOISE_FLOOR
            or not isinstance(loss, (int, float)) or not math.isfinite(loss) or loss < 0):
        return result
    return {**result, metric: -1e-9 * loss / (1.0 + loss)}
