"""A finished trial's folder is tidied after its trainer has exited, not when the driver hears of the end.

Tune tells the driver a trial stopped while the trial's worker is still
stopping its trainer (SIGTERM, up to 10 s): a trainer that writes one more
checkpoint in that time must not leave it behind.  The disk a sweep reports using
counts a checkpoint linked under several names once.
"""
import os
import sys
import threading
import time

from automl.sweep.child import PID_FILE, TrainingProcess
from automl.sweep.tidy import tidy_finished_trial


def test_a_checkpoint_written_while_the_trainer_stops_is_still_deleted(tmp_path):
    folder = tmp_path / "trial"
    train = folder / "train"
    train.mkdir(parents=True)
    (train / "model_best.pth").write_bytes(b"not a checkpoint: slimming leaves it as it is")
    # A trainer still finishing: 1.5 s after the trial ended it writes model_latest.pth and a temporary.
    script = ("import pathlib, time; time.sleep(1.5); t = pathlib.Path('train'); "
              "(t / 'model_latest.pth').write_bytes(b'x'); (t / '.model_latest.pth.1.tmp').write_bytes(b'x')")
    process = TrainingProcess([sys.executable, "-c", script], folder / "train.log", cwd=folder)
    assert (folder / PID_FILE).is_file()

    tidier = threading.Thread(target=tidy_finished_trial, args=(folder, True))
    tidier.start()
    tidier.join(timeout=30)

    assert process.poll() is not None, "tidying waited for the trainer to exit"
    assert sorted(p.name for p in train.iterdir()) == ["model_best.pth"]
    process.stop()
    assert not (folder / PID_FILE).exists(), "the worker removes the pid file once the group is gone"


def test_a_trainer_that_is_gone_does_not_delay_tidying(tmp_path):
    folder = tmp_path / "trial"
    (folder / "train").mkdir(parents=True)
    process = TrainingProcess([sys.executable, "-c", "pass"], folder / "train.log", cwd=folder)
    process.process.wait()   # exited, but its worker died before removing trainer.pid
    started = time.monotonic()
    tidy_finished_trial(folder, True)
    assert time.monotonic() - started < 5


def test_disk_used_counts_a_checkpoint_linked_under_several_names_once(tmp_path):
    from automl.sweep.finish import disk_usage

    train = tmp_path / "trial" / "train"
    train.mkdir(parents=True)
    (train / "model_latest.pth").write_bytes(b"x" * 1000)
    os.link(train / "model_latest.pth", train / "model_best.pth")
    (tmp_path / "trials.csv").write_bytes(b"y" * 10)
    assert disk_usage(tmp_path) == 1010
