"""How a retried trial is recorded, without running a sweep: attempts in trials.csv survive ``--resume``,
and a trial that failed on several attempts carries the reason of its last one."""
from __future__ import annotations

from types import SimpleNamespace

from automl.sweep.callback import error_reason
from automl.sweep.records import TrialsTable


def test_attempts_survive_a_reload_of_trials_csv_and_an_older_file_without_them_reads_as_one(tmp_path):
    path = tmp_path / "trials.csv"
    table = TrialsTable(path)
    table.get("a").attempts, table.get("a").status = 3, "failed"
    table.get("b").status = "completed"
    table.save()

    again = TrialsTable(path)   # what --resume reads
    assert again.get("a").attempts == 3 and again.get("b").attempts == 1
    assert "attempts" not in again.get("a").values, "attempts is an outcome, not a sampled value"

    older = tmp_path / "older.csv"
    older.write_text("trial_id,status,best_val_mAP50,epochs_run,reason\nc,completed,0.5,2,\n")
    assert TrialsTable(older).get("c").attempts == 1


def _ray_failure(number: int, message: str) -> str:
    """One entry of a Ray trial's error.txt, as Ray appends it for every failed attempt."""
    return (f"Failure # {number} (occurred at 2026-11-21_22-33-44)\n"
            f"ray::ImplicitFunc.train() (pid=1, ip=127.0.0.1, repr=run_trial)\n"
            f'  File "automl/sweep/trial.py", line 176, in run_trial\n'
            f"automl.sweep.trial.TrialFailed: {message}\n")


def test_a_trial_failed_on_every_attempt_carries_the_reason_of_its_last_attempt(tmp_path):
    error_file = tmp_path / "error.txt"
    last = "tao-automl train: error: the training loss is not finite at epoch 0, step 3"
    error_file.write_text(_ray_failure(1, "the trainer was killed by SIGKILL (out of memory?)") + _ray_failure(2, last))
    assert error_reason(SimpleNamespace(error_file=str(error_file))) == last
    assert error_reason(SimpleNamespace(error_file=None)) == "the trial's worker died"
