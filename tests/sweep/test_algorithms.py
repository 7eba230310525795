"""Every search algorithm end to end on a real local Ray, doing what it claims (grid: tests/faults, asha:
test_sweep_run.py).

- hyperband / bohb stop trials at their rungs, and the trials that survive the last halving reach the
  sweep's full epoch budget (Ray's own brackets ended at 2 of 3 epochs with reduction factor 2);
- pbt exploits: a trial continues from its donor's checkpoint (its epochs go on from the donor's) with a
  perturbed learning rate;
- bayesian (TPE) is seeded: two sweeps with one seed propose the same configurations; gp runs;
- random samples distinct values inside the space's bounds and runs every trial to the end.

The sweeps run in this process through ``run_sweep`` and share one local Ray (``run_sweep`` joins a Ray
that is already up), with the smallest trials (tiny_sweep.py), to keep the module at a few minutes.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import pytest
import yaml

from automl.sweep.schedulers import hyperband_rungs

from .tiny_sweep import tiny_sweep_spec


# -------------------------------------------------------------------------------------------- fast
def test_hyperband_rungs_end_at_the_full_budget_and_grow_by_the_reduction_factor():
    assert hyperband_rungs(3, 2, 2) == [1, 2, 3]     # Ray's own bracket: [0, 0, 0] (skipped)
    assert hyperband_rungs(3, 2, 1) == [2, 3]        # Ray's own: [1, 2], stopping survivors at 2 of 3
    assert hyperband_rungs(5, 2, 1) == [3, 5]        # Ray's own: [2, 4]
    assert hyperband_rungs(81, 3, 4) == [1, 3, 9, 27, 81]
    assert hyperband_rungs(9, 3, 0) == [9]


@pytest.mark.parametrize("algorithm", ["hyperband", "bohb"])
def test_hyperband_and_bohb_fill_their_most_aggressive_bracket_first(algorithm):
    """Ray's HyperBand fills the bracket without early stopping first; a small sweep would then stop nothing."""
    from automl.sweep.schedulers import build_scheduler
    from automl.sweep.settings import SweepSettings
    from search_spaces.parameters import SearchSpace

    settings = SweepSettings(results_dir=Path("unused"), algorithm=algorithm, max_epochs=3, reduction_factor=2)
    scheduler = build_scheduler(settings, SearchSpace(parameters=()))
    assert _brackets_filled(scheduler, 4 + 3 + 3) == [(4, [1, 2, 3]), (3, [2, 3]), (3, [3])]


def _brackets_filled(scheduler, trials: int) -> List:
    """(trials, rungs) of each HyperBand bracket, in the order ``trials`` new trials fill them."""
    from ray.tune.experiment import Trial

    brackets = []
    for index in range(trials):
        trial = Trial("function", trial_id=f"t{index}", stub=True)
        scheduler.on_trial_add(None, trial)
        bracket = scheduler._trial_info[trial][0]
        if not brackets or brackets[-1] is not bracket:
            brackets.append(bracket)
    return [(b._n0, b._rungs) for b in brackets]


@pytest.mark.parametrize("algorithm", ["hyperband", "bohb"])
def test_hyperband_and_bohb_start_their_first_rung_at_the_grace_period(algorithm):
    """The grace period is HyperBand's minimum resource: no bracket compares trials before it (on part 2's
    task, epoch 1 ranks trials worse than epoch 3).  With max_t 27 and reduction factor 3: brackets of 9,
    5 and 3 trials at epochs 3-9-27, 9-27 and 27, where grace 1 starts with 27 trials at 1-3-9-27."""
    from automl.sweep.runner import _live_trials
    from automl.sweep.schedulers import build_scheduler
    from automl.sweep.settings import SweepSettings
    from search_spaces.parameters import SearchSpace

    def brackets(grace: int):
        settings = SweepSettings(results_dir=Path("unused"), algorithm=algorithm, max_epochs=27, reduction_factor=3,
                                 grace_period=grace, max_trials=100)
        scheduler = build_scheduler(settings, SearchSpace(parameters=()))
        return _brackets_filled(scheduler, 9 + 5 + 3), _live_trials(settings)

    assert brackets(3) == ([(9, [3, 9, 27]), (5, [9, 27]), (3, [27])], 9)
    assert brackets(1)[0][0] == (27, [1, 3, 9, 27]) and brackets(1)[1] == 27
    assert brackets(27)[0][:1] == [(1, [27])]   # the grace period at the budget: no early stopping


def test_pbt_perturbs_no_trial_into_having_nothing_left_to_train():
    """Neither a trial reporting its last epoch nor one that would clone a donor's last epoch is restarted
    (Ray's PBT knows no budget; such a restart trains nothing).  No Tune controller is passed to either:
    reaching Ray's pause-and-restart path would fail here."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from automl.search_space import search_space_for
    from automl.skills import find_skill
    from automl.sweep.schedulers import build_scheduler
    from automl.sweep.settings import SweepSettings
    from automl.sweep.trial import TIME_ATTR

    settings = SweepSettings(results_dir=Path("unused"), algorithm="pbt", max_epochs=3, grace_period=1)
    scheduler = build_scheduler(settings, search_space_for(find_skill("rtdetr"), {}, None))
    behind, ahead = (Trial("function", trial_id=name, stub=True, config={"train.optim.lr": 1e-4})
                     for name in ("behind", "ahead"))
    for trial in (behind, ahead):
        scheduler.on_trial_add(SimpleNamespace(search_alg=None), trial)
    donor = scheduler._trial_state[ahead]
    donor.last_score, donor.last_result, donor.last_checkpoint = 0.5, {TIME_ATTR: 3, "val_mAP50": 0.5}, object()

    assert scheduler.on_trial_result(None, behind, {TIME_ATTR: 3, "val_mAP50": 0.0}) == TrialScheduler.CONTINUE
    config = dict(behind.config)
    scheduler._exploit(None, behind, ahead)
    assert behind.config == config and scheduler._num_perturbations == 0


# -------------------------------------------------------------------------------------------- slow
@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for every sweep of this module (ray.init costs seconds)."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 * 1024,
                 configure_logging=True, logging_level="ERROR")
    yield
    if started_here:
        ray.shutdown()


def _sweep(root: Path, flags: Dict, *, epochs: int, searched=("train.optim.lr", "train.optim.weight_decay")):
    """``tao-automl sweep`` as the command does it, in this process; returns (outcome, trials.csv rows)."""
    from automl.search_space import search_space_for
    from automl.skills import find_skill
    from automl.spec import load_spec_dict
    from automl.sweep import run_sweep, settings_from

    spec_file = tiny_sweep_spec(root, epochs=epochs, searched=searched, train_count=8, val_count=4)
    skill = find_skill("rtdetr")
    spec = load_spec_dict(skill, spec_file, [], "train")
    settings = settings_from(spec, {"cpus_per_trial": 1.0, "max_retries": 0, **flags})
    outcome = run_sweep("rtdetr", spec, search_space_for(skill, spec, None), settings, log=print)
    with open(settings.automl_dir / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return outcome, rows


def _bounds(name: str):
    """The range the rtdetr schema searches ``name`` over (tiny spec values don't move it)."""
    from automl.search_space import search_space_for
    from automl.skills import find_skill

    skill = find_skill("rtdetr")
    space = search_space_for(skill, {}, None)
    parameter = next(p for p in space.parameters if p.name == name)
    return parameter.bounds(space.base_values)


def _epochs(row: Dict[str, str]) -> List[dict]:
    path = Path(row["trial_dir"]) / "train" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["hyperband", "bohb"])
def test_hyperband_and_bohb_stop_trials_at_their_rungs_and_survivors_reach_the_budget(tmp_path, local_ray,
                                                                                     algorithm):
    # 3 epochs, reduction factor 2: the first bracket holds 4 trials with rungs at 1, 2 and 3 epochs.
    outcome, rows = _sweep(tmp_path, {"algorithm": algorithm, "max_trials": 4, "reduction_factor": 2, "seed": 3},
                           epochs=3)
    assert len(rows) == 4
    by_status = sorted((r["status"], int(r["epochs_run"])) for r in rows)
    assert by_status == [("completed", 3), ("pruned", 1), ("pruned", 1), ("pruned", 2)], by_status
    survivor = next(r for r in rows if r["status"] == "completed")
    # Paused at each rung and resumed from its own checkpoint: one unbroken curve, each epoch once.
    assert [e["epoch"] for e in _epochs(survivor)] == [0, 1, 2]
    assert outcome.best is not None and outcome.onnx_file is not None and outcome.onnx_file.is_file()


@pytest.mark.slow
def test_pbt_continues_a_trial_from_its_donors_checkpoint_with_a_perturbed_learning_rate(tmp_path, local_ray):
    """A population of 2 where one trial runs at a time (2 CPUs each): each trial is paused at every epoch
    for the other, so PBT's decisions do not hang on how far apart two trainers start.  Whichever of the
    two scores better (or both 0.0), the one behind clones it at epoch 2 of 3 at the latest."""
    outcome, rows = _sweep(tmp_path, {"algorithm": "pbt", "max_trials": 2, "grace_period": 1, "seed": 0,
                                      "cpus_per_trial": 2.0}, epochs=3, searched=("train.optim.lr",))
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows), rows
    exploits = [json.loads(line) for path in Path(outcome.automl_dir).rglob("pbt_global.txt")
                for line in path.read_text().splitlines() if line.strip()]
    assert exploits, f"PBT never exploited a donor: {rows}"
    _, _, _, _, donor_config, new_config = exploits[0]
    assert new_config["train.optim.lr"] != pytest.approx(donor_config["train.optim.lr"], rel=1e-9)

    exploiters = []
    for row in rows:
        spec = yaml.safe_load((Path(row["trial_dir"]) / "spec.yaml").read_text())
        resumed = spec["train"].get("resume_training_checkpoint_path") or ""
        if resumed.endswith("donor/model_latest.pth"):
            exploiters.append((row, spec))
    assert exploiters, f"no trial was restarted from a donor's checkpoint; exploits: {exploits}"
    for row, spec in exploiters:
        assert spec["train"]["resume_with_spec_hyperparameters"] is True
        epochs = [record["epoch"] for record in _epochs(row)]
        assert epochs, f"{row['trial_id']} was restarted from a donor and trained nothing; exploits: {exploits}"
        assert epochs[0] >= 1, "the trial restarted from scratch instead of from the donor's weights"
        assert epochs == list(range(epochs[0], 3)), epochs


def test_bayesian_tpe_with_one_seed_proposes_the_same_configurations():
    """Seeded TPE, past its random start-up trials: the same results told give the same proposals."""
    import math

    from automl.search_space import search_space_for
    from automl.skills import find_skill
    from automl.sweep.searchers import build_searcher
    from automl.sweep.settings import SweepSettings
    from automl.sweep.trial import TIME_ATTR

    space = search_space_for(find_skill("rtdetr"), {}, None)
    settings = SweepSettings(results_dir=Path("unused"), algorithm="bayesian", max_trials=9, max_epochs=2, seed=11)

    def proposals():
        searcher = build_searcher(settings, space)
        made = []
        for i in range(6):   # 4 start-up trials (startup_trials(9)), then TPE's own
            config = searcher.suggest(f"t{i}")
            made.append(config)
            score = -abs(math.log10(config["train.optim.lr"]) + 3.5)   # best near lr 3e-4
            searcher.on_trial_complete(f"t{i}", {"val_mAP50": score, TIME_ATTR: 2})
        return made

    first = proposals()
    assert first == proposals()
    assert len({c["train.optim.lr"] for c in first}) == 6


@pytest.mark.slow
def test_bayesian_with_the_gp_sampler_runs_a_sweep(tmp_path, local_ray):
    _, gp = _sweep(tmp_path / "gp", {"algorithm": "bayesian", "sampler": "gp", "max_trials": 3, "seed": 11}, epochs=1)
    assert len(gp) == 3 and all(r["status"] == "completed" for r in gp), gp


@pytest.mark.slow
def test_random_search_samples_distinct_values_inside_the_bounds_and_runs_every_trial_to_the_end(tmp_path,
                                                                                                 local_ray):
    outcome, rows = _sweep(tmp_path, {"algorithm": "random", "max_trials": 3, "seed": 5}, epochs=2)
    assert [r["status"] for r in rows] == ["completed"] * 3 and all(int(r["epochs_run"]) == 2 for r in rows)
    for name in ("train.optim.lr", "train.optim.weight_decay"):
        values = [float(r[name]) for r in rows]
        low, high = _bounds(name)
        assert len(set(values)) == 3 and all(low <= v <= high for v in values), (name, values, low, high)
    assert outcome.best is not None and outcome.best.best_value == max(float(r["best_val_mAP50"] or 0) for r in rows)
    # automl_delete_intermediate_ckpt (default): each finished trial keeps its best checkpoint, without the
    # optimizer state it no longer needs.
    from trainers.rtdetr.checkpoint import load_checkpoint

    for row in rows:
        kept = sorted((Path(row["trial_dir"]) / "train").glob("*.pth"))
        assert [p.name for p in kept] == ["model_best.pth"]
        assert "optimizer" not in load_checkpoint(kept[0]) and "model" in load_checkpoint(kept[0])
