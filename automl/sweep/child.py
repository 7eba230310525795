"""A trial's training process: started in its own process group, always ended with it.

Why a child process (DESIGN.md decision 1): GPU memory is returned when it
exits, a crash ends one trial, and several GPUs are just torchrun.  Why its own
process group: the trainer's DataLoader workers (and torchrun's ranks) are
grandchildren; ending the group ends them all.  Why PR_SET_PDEATHSIG: when Ray
kills the trial's actor outright (a scheduler stop, ``ray stop``), no Python
code of ours runs, yet the trainer must not outlive it.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the process-group kill in stop() still applies
        pass


PID_FILE = "trainer.pid"


def oom_kill_count() -> Optional[int]:
    """How many processes the kernel's out-of-memory killer has killed since boot (``oom_kill`` in
    /proc/vmstat: cgroup and system-wide OOMs alike, Linux >= 4.13), or None where it is not available."""
    try:
        with open("/proc/vmstat") as vmstat:
            for line in vmstat:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class TrainingProcess:
    """``tao-automl train`` (or torchrun) for one trial spec, output to ``log_file``."""

    def __init__(self, command: Sequence[str], log_file: Path, env: Optional[Dict[str, str]] = None,
                 cwd: Optional[Path] = None):
        self.log_file = Path(log_file)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_file, "ab")
        self.process = subprocess.Popen(
            list(command), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=str(cwd) if cwd else None, start_new_session=True, preexec_fn=_die_with_parent)
        # Who is training here, for the driver, which tidies the trial's folder only once the group is gone.
        self.pid_file = self.log_file.parent / PID_FILE
        self.pid_file.write_text(json.dumps({"pid": self.process.pid, "host": socket.gethostname()}))
        self._oom_kills_at_start = oom_kill_count()

    def oom_killer_ran(self) -> Optional[bool]:
        """Whether the kernel's OOM killer killed anything on this machine since the trainer started (None:
        cannot tell).  A trainer that died of SIGKILL while it did was, in all likelihood, its victim."""
        now = oom_kill_count()
        return None if now is None or self._oom_kills_at_start is None else now > self._oom_kills_at_start

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> Optional[int]:
        return self.process.poll()

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM the whole group, SIGKILL what is left after ``grace_seconds``; reap the child."""
        for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
            if not _group_alive(self.pid):
                break
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(self.pid):
                self.process.poll()
                time.sleep(0.1)
        self.process.poll()
        self._log.close()
        if not _group_alive(self.pid):
            self.pid_file.unlink(missing_ok=True)

    def last_lines(self, count: int = 20) -> List[str]:
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 16384))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-count:]


def wait_until_trainer_exited(folder: Path, timeout: float = 30.0) -> bool:
    """Wait (up to ``timeout`` s) until the trainer that ran in ``folder`` has exited with its whole process
    group: its worker removes ``trainer.pid`` then, and on this host the group itself is checked (a worker
    that died leaves the file, but PDEATHSIG takes its trainer with it).  True once it is gone."""
    path = Path(folder) / PID_FILE
    deadline = time.monotonic() + timeout
    while path.is_file():
        try:
            owner = json.loads(path.read_text())
            if owner.get("host") == socket.gethostname() and not _group_alive(int(owner["pid"])):
                return True
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader keeps the group "alive" until reaped; only members that run count.
    return any(_pgid_of(pid) == pgid and not _is_zombie(pid) for pid in _all_pids())


def _all_pids() -> List[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()] if os.path.isdir("/proc") else []


def _pgid_of(pid: int) -> Optional[int]:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def training_command(skill: str, spec_file: Path) -> List[str]:
    """The plain trainer for ``spec_file``; it re-runs itself under torchrun when the spec asks for
    several GPUs (``train.num_gpus``), so a multi-GPU trial needs nothing more here."""
    return [sys.executable, "-m", "automl.cli", "train", "--skill", skill, "-e", str(spec_file),
            "--automl-policy", "off"]
