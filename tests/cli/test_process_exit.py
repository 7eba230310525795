"""The ``tao-automl`` process ends without module teardown (automl.cli.exit_now), and loses nothing by it:

- everything printed reaches a pipe, whole, with the command's exit code (0, and 2 for bad input);
- exit handlers still run (a temporary folder's clean-up is one);
- a thread still at work is waited for, as a normal exit would.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from automl.cli import main


def _tao_automl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "automl.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_the_whole_output_reaches_a_pipe_with_the_exit_code(tmp_path, capsys):
    assert main(["space", "--skill", "rtdetr", "--json"]) == 0
    in_process = capsys.readouterr().out
    done = _tao_automl("space", "--skill", "rtdetr", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == in_process and len(in_process) > 1000

    refused = _tao_automl("space", "--skill", "no_such_skill", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("tao-automl space: error:") and len(refused.stderr.splitlines()) == 1


def _exit_now_after(setup: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = textwrap.dedent(setup) + "\nfrom automl.cli import exit_now\nprint('last line')\nexit_now(3)\n"
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_exit_handlers_run_and_a_working_thread_is_waited_for(tmp_path):
    done = _exit_now_after(f"""
        import tempfile
        folder = tempfile.TemporaryDirectory(dir={str(tmp_path)!r})   # removed by an exit handler
        open(folder.name + "/inside", "w").close()
    """, tmp_path)
    assert (done.returncode, done.stdout) == (3, "last line\n"), done.stderr
    assert list(tmp_path.iterdir()) == []

    done = _exit_now_after(f"""
        import pathlib, threading, time
        def finish():
            time.sleep(1.0)
            pathlib.Path({str(tmp_path / "written")!r}).write_text("by the thread")
        threading.Thread(target=finish).start()
    """, tmp_path)
    assert (done.returncode, done.stdout) == (3, "last line\n"), done.stderr
    assert (tmp_path / "written").read_text() == "by the thread"
