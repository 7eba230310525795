"""The search-goal tools (benchmarks/sweep_search_ceiling.py, sweep_search_replay.py) count what part 2 counts.

They drive the product's own ASHA scheduler on recorded curves, so a scheduler change shows in their
numbers; these tests keep them running and their epoch counts exact.
"""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from sweep_search_ceiling import (halving_epochs, largest_bracket_within, load_runs, plateau, rungs_of,  # noqa: E402
                                  save_curves)
from sweep_search_replay import _Clock, replay_successive_halving  # noqa: E402

RISING = [round(0.1 * epoch, 1) for epoch in range(1, 10)]   # 0.1 at epoch 1 ... 0.9 at epoch 9


def _clock(target: float, budget: int = 100) -> _Clock:
    return _Clock(random.Random(0), jitter=0.0, start_cost=0.0, budget=budget, target=target)


def test_successive_halving_trains_each_rung_in_full_before_the_next():
    rungs = rungs_of(9, eta=3)
    assert rungs == [1, 3, 9]
    # 9 draws x 1 epoch, then 3 of them to epoch 3 (2 more each), then 1 to epoch 9 (6 more).
    assert halving_epochs(9, rungs, eta=3) == 9 + 3 * 2 + 6 == 21
    assert largest_bracket_within(21, rungs, eta=3) == 9 and largest_bracket_within(20, rungs, eta=3) < 9
    # Epochs are counted as they complete: 0.3 comes with the first trial's third epoch, 0.9 with the last.
    assert replay_successive_halving([RISING], _clock(0.3), 9, rungs, eta=3) == 9 + 2
    assert replay_successive_halving([RISING], _clock(0.9), 9, rungs, eta=3) == 21
    assert replay_successive_halving([RISING], _clock(0.95), 9, rungs, eta=3) is None


def test_a_plateau_is_the_last_third_of_a_curve_and_its_spread():
    # Rising for 6 epochs, then settled around 0.8: the rise does not count as noise.
    mean, spread = plateau([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.79, 0.81, 0.80])
    assert abs(mean - 0.80) < 1e-9 and abs(spread - 0.01) < 1e-9
    assert plateau([0.5, 0.5, 0.5]) == (0.5, 0.0)


def test_the_replay_runs_every_rule_on_the_recorded_curves():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "sweep_search_replay.py"),
                           str(BENCHMARKS / "data/part2_random_curves.json"), "--grace-period", "3", "--sweeps", "20"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[0].strip(): line.split("|")[1].strip() for line in done.stdout.splitlines()
            if line.count("|") == 2 and "P(goal)" not in line}
    assert {"tao-automl asha", "Ray ASHA", "paper ASHA", "full-rung ASHA", "SHA(9)"} <= set(rows), done.stdout
    assert all(0.0 <= float(p) <= 1.0 for p in rows.values()), rows



def test_saved_curves_keep_their_losses_and_older_files_load_without(tmp_path):
    learns, dead = ([0.001, 0.02, 0.3], [26.0, 22.0, 19.0]), ([0.002, 0.001, 0.0], [28.5, 28.4, 28.4])
    save_curves([learns, dead], tmp_path / "curves.json", tmp_path)
    assert load_runs(tmp_path / "curves.json") == [learns, dead]
    save_curves([learns, (dead[0], None)], tmp_path / "partial.json", tmp_path)   # losses for all or none
    assert load_runs(tmp_path / "partial.json") == [(learns[0], None), (dead[0], None)]


def test_the_replay_gives_the_product_s_rungs_the_recorded_losses():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "sweep_search_replay.py"),
                           str(BENCHMARKS / "data/part2_wide_random_curves.json"), "--sweeps", "5"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "24 full 27-epoch curves with their losses" in done.stdout, done.stdout
