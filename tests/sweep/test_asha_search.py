"""ASHA's rungs, the part of ASHA + TPE that decides which trials train on (no Ray session needed).

- ASHA's first rung waits for reduction_factor arrivals before it lets anyone through (Ray lets the first
  arrival through unconditionally, and TPE then ranks that completed trial above every pruned one), and
  a trial that stopped waiting is run again when it turns out to rank in the rung's top;
- a higher rung's first arrival must still rank in the top of the rung below, unless no running trial
  outranks it there; simulated sweeps show some trial always reaches the budget;
- trials below a noise floor of val_mAP50 (0 or chance matches) rank by training loss at ASHA's and
  HyperBand's rungs, below every score at the floor or above (TPE's side: test_tpe_search.py);
- ASHA's state (rungs, waiting trials) survives ``--resume``;
- a re-run passes the first rung (what the searcher does with it: test_tpe_search.py).
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import List

import pytest
import ray.cloudpickle as ray_pickle
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from automl.sweep.rung_score import NOISE_FLOOR, rung_result
from automl.sweep.schedulers import SchedulerState, build_scheduler
from automl.sweep.settings import SweepSettings
from automl.sweep.trial import RERUN_OF, TIME_ATTR


class _Trial:
    def __init__(self, trial_id: str, status: str = Trial.RUNNING, rerun_of: str = ""):
        self.trial_id, self.status = trial_id, status
        self.config = {RERUN_OF: rerun_of} if rerun_of else {}


def _asha_scheduler(max_epochs: int = 9, grace: int = 1, rf: int = 3, max_trials: int = 20):
    settings = SweepSettings(results_dir=Path("unused"), algorithm="asha", max_trials=max_trials,
                             max_epochs=max_epochs, grace_period=grace, reduction_factor=rf)
    return build_scheduler(settings, space=None)


def _asha(max_epochs: int = 9, grace: int = 1, rf: int = 3):
    """The bracket, connected to a searcher that always takes a re-run (as a sweep's is)."""
    scheduler = _asha_scheduler(max_epochs, grace, rf)
    scheduler.requeue_with(lambda trial_id: True)
    return scheduler._brackets[0]


def _report(scheduler, trial_id: str, epoch: int, value: float, rerun_of: str = "", **more) -> str:
    """One epoch's result of a trial (added to the scheduler on its first); ``more``: other metrics."""
    if trial_id not in scheduler._trial_info and epoch == 1:
        scheduler.on_trial_add(None, _Trial(trial_id, rerun_of=rerun_of))
    return scheduler.on_trial_result(None, _Trial(trial_id), {TIME_ATTR: epoch, "val_mAP50": value, **more})


def test_the_first_arrivals_at_asha_s_first_rung_stop_and_later_ones_pass_in_the_top_third():
    bracket = _asha()
    stop, go = TrialScheduler.STOP, TrialScheduler.CONTINUE
    # The first two arrivals (reduction factor 3) stop however good they are (and wait: the next test).
    assert [bracket.on_result(_Trial(t), 1, v) for t, v in (("a", 0.9), ("b", 0.5))] == [stop, stop]
    # From the third on, Ray's cutoff: the top third of the results recorded at the rung.
    assert bracket.on_result(_Trial("c"), 1, 0.2) == stop
    assert bracket.on_result(_Trial("d"), 1, 0.95) == go
    assert bracket.on_result(_Trial("e"), 1, 0.6) == stop


def test_a_waiting_trial_in_the_top_of_the_filled_first_rung_is_proposed_again_and_its_rerun_passes():
    scheduler, asked = _asha_scheduler(), []
    scheduler.requeue_with(lambda trial_id: asked.append(trial_id) or True)
    # "a" arrives first with the best score and stops (the rung is not yet comparable); "b" too.
    assert _report(scheduler, "a", 1, 0.054) == _report(scheduler, "b", 1, 0.001) == TrialScheduler.STOP
    assert asked == []
    # "c" fills the rung: "a" is in its top third, "b" is not.
    _report(scheduler, "c", 1, 0.0)
    assert asked == ["a"]
    # Its re-run reaches epoch 1 with the same score (training is deterministic) and goes on.
    assert _report(scheduler, "a-rerun", 1, 0.054, rerun_of="a") == TrialScheduler.CONTINUE
    # The stopped "a"'s final result, reported after the re-queue, is not counted a second time.
    assert sorted(scheduler._brackets[0]._rungs[-1][1]) == ["a-rerun", "b", "c"]


def test_a_waiting_zero_runs_again_when_the_zeros_after_it_pass_the_rung():
    scheduler, asked = _asha_scheduler(rf=2), []
    scheduler.requeue_with(lambda trial_id: asked.append(trial_id) or True)
    assert _report(scheduler, "a", 1, 0.0) == TrialScheduler.STOP   # first: waits
    assert _report(scheduler, "b", 1, 0.0) == TrialScheduler.CONTINUE   # Ray's rule: not below the cutoff, 0
    assert asked == ["a"]   # so "a", tied with it, is no worse and runs again


def test_near_zero_scores_at_a_rung_rank_by_training_loss_so_only_the_fastest_learners_among_them_go_on():
    # A wide learning-rate range: at epoch 1 every trial's val_mAP50 is 0 or a few chance matches, which
    # favour nobody in particular (here the dead "c").  Those that learn nothing keep a loss near their
    # first (27); those that learn lower it.  Ray's rule alone would let the chance matches through.
    scheduler, asked = _asha_scheduler(max_trials=40), []
    scheduler.requeue_with(lambda trial_id: asked.append(trial_id) or True)
    arrivals = [("a", 0.0005, 27.0), ("b", 0.0, 26.9), ("c", 0.0016, 27.1), ("learns", 0.0, 21.0),
                ("e", 0.0008, 27.2), ("f", 0.0003, 27.3), ("learns_more", 0.0027, 19.5), ("h", 0.0, 27.05)]
    actions = {t: _report(scheduler, t, 1, score, loss=loss) for t, score, loss in arrivals}
    assert [t for t, action in actions.items() if action == TrialScheduler.CONTINUE] == ["learns", "learns_more"]
    # The first two arrivals waited; each was asked back once in its rung's top third as it stood
    # (b, the lower loss, when c arrived; a when only c and e were below it).  c, e, f and h stop for good.
    assert asked == ["b", "a"]
    # A score at the noise floor or above outranks every one below it, whatever the losses...
    assert _report(scheduler, "finds_boxes", 1, NOISE_FLOOR, loss=30.0) == TrialScheduler.CONTINUE
    # ...and one just below it is ranked by its loss like the rest.
    assert _report(scheduler, "chance", 1, 0.9 * NOISE_FLOOR, loss=30.0) == TrialScheduler.STOP


def test_a_rung_score_orders_near_zeros_by_loss_below_the_noise_floor_and_changes_nothing_else():
    near_zeros = [rung_result({"val_mAP50": score, "loss": loss}, "val_mAP50", "max")["val_mAP50"]
                  for score, loss in ((0.009, 0.0), (0.0, 0.5), (0.0016, 20.0), (0.0, 27.0), (0.0005, 1e6))]
    assert near_zeros == sorted(near_zeros, reverse=True) and len(set(near_zeros)) == len(near_zeros)
    assert all(-1e-9 < z <= 0.0 for z in near_zeros)
    reported = {"val_mAP50": 0.0016, "loss": 20.0}
    assert rung_result(reported, "val_mAP50", "max") is not reported and reported["val_mAP50"] == 0.0016
    for result, mode in (({"val_mAP50": NOISE_FLOOR, "loss": 20.0}, "max"), ({"val_mAP50": 0.2, "loss": 20.0}, "max"),
                         ({"val_mAP50": 0.0}, "max"), ({"val_mAP50": 0.0, "loss": math.nan}, "max"),
                         ({"val_loss": 0.0, "loss": 3.0}, "min")):
        assert rung_result(result, next(iter(result)), mode) is result


def test_hyperband_halves_a_rung_of_zeros_by_training_loss():
    settings = SweepSettings(results_dir=Path("unused"), algorithm="hyperband", max_trials=3, max_epochs=3,
                             grace_period=1, reduction_factor=3)
    scheduler, stopped = build_scheduler(settings, space=None), []
    controller = SimpleNamespace(stop_trial=stopped.append)   # what the bracket asks of Ray's trial runner
    trials = {name: _Trial(name) for name in ("slow", "fast", "dead")}
    for trial in trials.values():
        trial.is_saving = False
        scheduler.on_trial_add(controller, trial)
    for name, loss in (("slow", 24.0), ("fast", 19.0)):
        assert scheduler.on_trial_result(controller, trials[name], {TIME_ATTR: 1, "val_mAP50": 0.0,
                                                                    "loss": loss}) == TrialScheduler.PAUSE
        trials[name].status = Trial.PAUSED
    # The last arrival completes the rung: the bracket keeps its top third, the lowest loss.
    assert scheduler.on_trial_result(controller, trials["dead"], {TIME_ATTR: 1, "val_mAP50": 0.0,
                                                                   "loss": 27.0}) == TrialScheduler.STOP
    assert stopped == [trials["slow"]] and trials["fast"] not in stopped


def test_a_rerun_passes_the_first_rung_even_when_better_results_arrived_while_it_repeated_its_epochs():
    scheduler, asked = _asha_scheduler(), []
    scheduler.requeue_with(lambda trial_id: asked.append(trial_id) or True)
    for t, v in (("a", 0.054), ("b", 0.001), ("c", 0.0)):
        _report(scheduler, t, 1, v)
    assert asked == ["a"] and scheduler._brackets[0].trials_left() == 20 - 3 - 1
    scheduler.on_trial_add(None, _Trial("a-rerun", rerun_of="a"))
    assert scheduler._brackets[0].trials_left() == 20 - 4   # the re-run owed is the one just added
    for t, v in (("d", 0.2), ("e", 0.3), ("f", 0.4)):   # meanwhile better trials fill the rung
        _report(scheduler, t, 1, v)
    assert _report(scheduler, "g", 1, 0.06) == TrialScheduler.STOP   # not in the top third any more...
    assert _report(scheduler, "a-rerun", 1, 0.054) == TrialScheduler.CONTINUE   # ...but the re-run was promised


def test_near_the_end_of_a_sweep_the_first_rung_keeps_ray_s_rule():
    # Two trials in all, reduction factor 3: waiting would leave nobody to fill the rung or re-run it.
    scheduler = _asha_scheduler(max_trials=2)
    assert _report(scheduler, "a", 1, 0.3) == TrialScheduler.CONTINUE   # Ray: nothing recorded to compare to
    assert _report(scheduler, "b", 1, 0.1) == TrialScheduler.STOP


def test_a_higher_rung_s_first_arrival_goes_on_while_in_the_top_of_the_rung_below():
    bracket = _asha()
    for t, v in (("a", 0.1), ("b", 0.2), ("c", 0.9)):
        bracket.on_result(_Trial(t), 1, v)
    # "c" won its first-rung comparison and still leads it: first at rung 3, it goes on.
    assert bracket.on_result(_Trial("c"), 3, 0.4) == TrialScheduler.CONTINUE


def test_a_higher_rung_s_first_arrival_since_outranked_below_by_a_running_trial_stops_for_it():
    scheduler = _asha_scheduler()
    for t, v in (("a", 0.0), ("b", 0.0), ("c", 0.001), ("d", 0.0)):
        _report(scheduler, t, 1, v)
    for t, v in (("e", 0.05), ("f", 0.03)):   # still running (e passes; f too, with ties near 0)
        _report(scheduler, t, 1, v)
    # "c" passed epoch 1 against zeros; at epoch 3 it is first, but "e" now leads epoch 1 and still runs.
    assert _report(scheduler, "c", 3, 0.005) == TrialScheduler.STOP
    # "c" was not recorded at epoch 3: "e" finds the rung empty too, leads the rung below, and goes on.
    assert _report(scheduler, "e", 3, 0.002) == TrialScheduler.CONTINUE


def test_a_higher_rung_s_first_arrival_goes_on_when_those_outranking_it_below_have_ended():
    scheduler = _asha_scheduler()
    for t, v in (("a", 0.0), ("b", 0.0), ("c", 0.001), ("d", 0.0), ("e", 0.05)):
        _report(scheduler, t, 1, v)
    scheduler.on_trial_error(None, _Trial("e"))   # "e" failed: nobody else may ever reach epoch 3
    assert _report(scheduler, "c", 3, 0.005) == TrialScheduler.CONTINUE


def test_a_trial_ray_retries_after_an_error_is_running_again_and_counts_once():
    scheduler = _asha_scheduler(max_trials=6)
    for t, v in (("a", 0.0), ("b", 0.0), ("c", 0.001), ("d", 0.0), ("e", 0.05), ("f", 0.03)):
        _report(scheduler, t, 1, v)
    # Ray's retry: on_trial_error, then the same trial is added again.
    scheduler.on_trial_error(None, _Trial("e"))
    scheduler.on_trial_add(None, _Trial("e"))
    assert scheduler._brackets[0].trials_left() == 0
    # "e" still runs and leads epoch 1, so "c", first at epoch 3, stops for it.
    assert _report(scheduler, "c", 3, 0.005) == TrialScheduler.STOP


def _resumed(scheduler, trial_status: dict):
    """What ``--resume`` does: Ray unpickles the saved scheduler state into a new scheduler (through the
    SchedulerState callback), then adds every trial of the saved experiment again."""
    state = ray_pickle.loads(ray_pickle.dumps(SchedulerState(scheduler).get_state()))
    resumed, asked = _asha_scheduler(max_trials=scheduler.max_trials), []
    resumed.requeue_with(lambda trial_id: asked.append(trial_id) or True)
    SchedulerState(resumed).set_state(state)
    for trial_id, status in trial_status.items():
        resumed.on_trial_add(None, _Trial(trial_id, status))
    return resumed, asked


def test_asha_s_rungs_and_waiting_trials_survive_a_resume():
    scheduler = _asha_scheduler(max_trials=6)
    scheduler.requeue_with(lambda trial_id: True)
    # Before the kill: "a" and "b" stopped at the first rung to wait for it to fill; "c" is still training.
    assert _report(scheduler, "a", 1, 0.054) == _report(scheduler, "b", 1, 0.001) == TrialScheduler.STOP
    scheduler.on_trial_complete(None, _Trial("a"), {TIME_ATTR: 1})
    scheduler.on_trial_complete(None, _Trial("b"), {TIME_ATTR: 1})
    scheduler.on_trial_add(None, _Trial("c"))

    resumed, asked = _resumed(scheduler, {"a": Trial.TERMINATED, "b": Trial.TERMINATED, "c": Trial.PENDING})
    assert resumed._brackets[0].trials_left() == 3   # 6, less the three the experiment holds
    # "c" fills the rung: the waiting "a", in its top third, runs again, as without the kill.
    _report(resumed, "c", 1, 0.0)
    assert asked == ["a"]
    assert sorted(resumed._brackets[0]._rungs[-1][1]) == ["b", "c"]


def test_trials_that_had_ended_before_a_resume_stay_ended():
    scheduler = _asha_scheduler()
    for t, v in (("a", 0.0), ("b", 0.0), ("c", 0.001), ("d", 0.0), ("e", 0.05), ("f", 0.03)):
        _report(scheduler, t, 1, v)
    for t in "ef":   # they lead epoch 1, then end
        scheduler.on_trial_remove(None, _Trial(t))
    resumed, _ = _resumed(scheduler, {**{t: Trial.TERMINATED for t in "abdef"}, "c": Trial.PENDING})
    # "c", first at epoch 3, goes on: "e" and "f", which outrank it at epoch 1, will never arrive.
    assert _report(resumed, "c", 3, 0.005) == TrialScheduler.CONTINUE


def test_a_saved_asha_state_for_other_rungs_is_refused():
    state = SchedulerState(_asha_scheduler(max_epochs=9)).get_state()
    with pytest.raises(ValueError, match=r"rungs at epochs \[9, 3, 1\], this sweep at \[27, 9, 3, 1\]"):
        SchedulerState(_asha_scheduler(max_epochs=27)).set_state(state)


@pytest.mark.parametrize("rf", [2, 3])
def test_every_simulated_asha_sweep_trains_some_trial_to_the_budget(rf):
    """Random sweeps (trial counts, concurrency, learning curves with ties at 0, arrival orders): the
    promotion rules never stop every trial, with or without re-runs of waiting trials."""
    rng = random.Random(rf)
    for sweep in range(300):
        trials, concurrency, max_t = rng.randint(1, 12), rng.randint(1, 3), rng.choice([2, 4, 9, 27])
        completed = _simulate_sweep(rng, rf, trials, concurrency, max_t, requeue=sweep % 2 == 0)
        assert completed, f"sweep {sweep}: {trials} trials, {concurrency} at once, max_t {max_t}: none completed"


def _simulate_sweep(rng, rf: int, trials: int, concurrency: int, max_t: int, requeue: bool) -> List[str]:
    """Trials run ``concurrency`` at a time and each reports one epoch per step, in a random order."""
    settings = SweepSettings(results_dir=Path("unused"), algorithm="asha", max_trials=trials, max_epochs=max_t,
                             grace_period=1, reduction_factor=rf)
    scheduler = build_scheduler(settings, space=None)
    curves, queue, running, completed, started = {}, [], {}, [], 0
    if requeue:
        scheduler.requeue_with(lambda trial_id: queue.append(trial_id) or True)
    while True:
        while len(running) < concurrency and started < trials:
            trial_id, rerun_of = f"t{started}", queue.pop(0) if queue else ""
            curves[trial_id] = curves[rerun_of] if rerun_of else [
                rng.choice([0.0, rng.random()]) * (epoch + 1) / max_t for epoch in range(max_t)]
            scheduler.on_trial_add(None, _Trial(trial_id, rerun_of=rerun_of))
            running[trial_id], started = 0, started + 1
        if not running:
            return completed
        trial_id = rng.choice(sorted(running))
        running[trial_id] += 1
        epoch = running[trial_id]
        result = {TIME_ATTR: epoch, "val_mAP50": curves[trial_id][epoch - 1]}
        if scheduler.on_trial_result(None, _Trial(trial_id), result) == TrialScheduler.STOP:
            scheduler.on_trial_complete(None, _Trial(trial_id), result)
            del running[trial_id]
            if epoch == max_t:
                completed.append(trial_id)


def test_the_first_rung_waits_also_when_it_is_asha_s_only_rung():
    bracket = _asha(max_epochs=2, grace=1)   # reduction factor 3: one rung, at epoch 1
    assert [bracket.on_result(_Trial(t), 1, 0.9) for t in "ab"] == [TrialScheduler.STOP] * 2


def test_asha_with_the_grace_period_at_the_full_budget_stops_nobody_early():
    bracket = _asha(max_epochs=2, grace=2)
    assert bracket.on_result(_Trial("a"), 2, 0.1) == TrialScheduler.CONTINUE
