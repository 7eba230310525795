"""One driver per sweep folder: ``driver.json`` names the process that runs the sweep.

``--resume`` cleans up after a driver that was killed (its writers' temporaries,
trials it had just started), which is only safe when that driver is really gone.
A second driver started on a running sweep's folder is refused with one line
naming the running one, instead of both writing trials.csv, MLflow and Ray's
experiment state.  A process is identified by its pid and, on Linux, its start
time, so a pid reused after a reboot or a kill -9 is not mistaken for the driver.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Optional

from trainers.atomic_write import write_text_atomic
from trainers.errors import UserError

CLAIM_FILE = "driver.json"


def _start_time(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]   # the command name may hold spaces or ')'


def _alive(pid: int, started: Optional[str]) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, owned by another user: the start time below tells whether it is the driver
        pass
    return started is None or _start_time(pid) == started


class DriverClaim:
    """``with DriverClaim(automl_dir):`` around a sweep: refuses when a live driver holds the folder, else
    holds it until the sweep ends (a killed driver leaves the file; its pid is then dead, and it is taken over)."""

    def __init__(self, automl_dir: Path):
        self.path = Path(automl_dir) / CLAIM_FILE

    def holder(self) -> Optional[dict]:
        """The live driver holding the folder (another process on this host), or None."""
        try:
            claim = json.loads(self.path.read_text())
            pid, host, started = int(claim["pid"]), str(claim["host"]), claim.get("started")
        except (OSError, ValueError, KeyError, TypeError):   # none, or unreadable: nobody to wait for
            return None
        if host != socket.gethostname() or pid == os.getpid() or not _alive(pid, started):
            return None   # another host's driver cannot be checked from here: the sweep folder is ours
        return claim

    def __enter__(self) -> "DriverClaim":
        holder = self.holder()
        if holder is not None:
            raise UserError(f"{self.path.parent}: a sweep driver is still running in this folder (pid "
                            f"{holder['pid']}); wait for it to end or stop it before starting another")
        pid = os.getpid()
        write_text_atomic(self.path, json.dumps({"pid": pid, "host": socket.gethostname(),
                                                 "started": _start_time(pid)}))
        return self

    def __exit__(self, *exc) -> None:
        try:
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass
