"""A sweep's start, before its first trial: the folder's one driver, and the Ray it starts or joins.

- One driver a sweep folder: a live driver's folder is refused with one line; a killed driver's is taken
  over.  ``--resume`` removes the killed driver's half-written temporaries, which is only safe once that
  driver is gone (tests/sweep/test_sweep_run.py resumes after a real kill -9).
- Ray: ``$RAY_ADDRESS`` (Ray's own variable) is the default cluster to join (joined for real in
  test_ray_cluster.py); a local Ray that cannot start is one line, not Ray's traceback.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from automl.sweep.driver_claim import CLAIM_FILE, DriverClaim, _start_time
from trainers.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def other_process():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def _claim(folder: Path, pid: int, started) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CLAIM_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": started}))


def _cli_sweep(tmp_path: Path, *args: str, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """``tao-automl sweep`` on a spec naming only results_dir, with a local Ray (no RAY_ADDRESS)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"results_dir: {tmp_path / 'results'}\n")
    environment = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180,
                          env={**environment, "PYTHONPATH": str(ROOT), **(env or {})})


def test_a_folder_held_by_a_live_driver_is_refused_naming_its_pid(tmp_path, other_process):
    _claim(tmp_path, other_process.pid, _start_time(other_process.pid))
    with pytest.raises(UserError, match=rf"still running in this folder \(pid {other_process.pid}\)"):
        with DriverClaim(tmp_path):
            pass
    assert json.loads((tmp_path / CLAIM_FILE).read_text())["pid"] == other_process.pid, "the live claim was lost"


def test_a_killed_drivers_folder_is_taken_over_and_released_at_the_end(tmp_path, other_process):
    _claim(tmp_path, other_process.pid, _start_time(other_process.pid))
    other_process.kill()
    other_process.wait()
    with DriverClaim(tmp_path):
        assert json.loads((tmp_path / CLAIM_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / CLAIM_FILE).exists()


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="process start times come from /proc")
def test_a_reused_pid_is_not_mistaken_for_the_driver(tmp_path, other_process):
    """After a kill -9 (or a reboot) the driver's pid may belong to another process: its start time differs."""
    _claim(tmp_path, other_process.pid, "1")
    with DriverClaim(tmp_path):
        pass


def test_resume_beside_a_running_driver_is_one_line_and_exit_2_before_anything_is_touched(tmp_path, other_process):
    automl = tmp_path / "results" / "automl"
    (automl / "ray" / "sweep").mkdir(parents=True)
    stale = automl / ".trials.csv.abc123.tmp"   # would be a live writer's temporary
    stale.write_text("half")
    _claim(automl, other_process.pid, _start_time(other_process.pid))
    done = _cli_sweep(tmp_path, "--resume")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {other_process.pid}" in lines[0] and str(automl) in lines[0], lines
    assert stale.read_text() == "half"


def test_the_ray_address_flag_defaults_to_ray_address_and_the_flag_wins(monkeypatch):
    import argparse

    from automl.commands.sweep import flags_of

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert flags_of(argparse.Namespace(ray_address=None))["ray_address"] == "10.0.0.1:6379"
    assert flags_of(argparse.Namespace(ray_address="10.0.0.2:6379"))["ray_address"] == "10.0.0.2:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    assert flags_of(argparse.Namespace(ray_address=None))["ray_address"] is None


def test_a_local_ray_that_cannot_start_is_one_line_and_exit_2(tmp_path):
    """Ray's temp folder under a regular file: Ray cannot create its session folder (as root too)."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    done = _cli_sweep(tmp_path, env={"RAY_TMPDIR": str(blocker / "ray")})
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not start a local Ray" in lines[0] and str(blocker) in lines[0], lines
