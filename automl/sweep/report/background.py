"""The sweep report drawn by a child process beside the end of the sweep.

The report costs seconds, most of them imports (torch, matplotlib, Optuna,
pycocotools) and the winner's pass over its validation set.  A sweep starts
this process before its first trial, so the imports happen while trials
train; once the winner is in ``best/`` the driver tells it to draw (while the
driver exports the winner to ONNX) and then to write the page (after the
export, which the page's files section lists).  The driver waits for it
before it closes MLflow, so a finished sweep always has its report, or one
warning line saying how to build it.

Protocol: the driver writes ``draw`` then ``write`` lines to the child's
stdin; end of input at any point (the driver gave up or died) ends the child
at once.  The child prints the report's own lines, then one line
``REPORT {json}`` (``html`` or ``error``, and its seconds).
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

RESULT_PREFIX = "REPORT "
Log = Callable[[str], None]


class ReportProcess:
    """The driver's handle on the child (see the module docstring)."""

    def __init__(self, results_dir: Path, skill: str, tracking_uri: Optional[str]):
        from automl.sweep.child import _die_with_parent

        self.results_dir = Path(results_dir)
        self._drawing = False
        self.seconds = 0.0   # the child's own drawing and writing time, once finished
        command = [sys.executable, "-m", "automl.sweep.report.background", str(self.results_dir), "--skill", skill]
        if tracking_uri:
            command += ["--tracking-uri", tracking_uri]
        # Its own session: a Ctrl+C that Ray Tune turns into a graceful stop must not end the report too.
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        start_new_session=True, preexec_fn=_die_with_parent)

    def draw(self) -> None:
        """Start drawing (the winner and trials.csv are final); returns at once."""
        if not self._drawing:
            self._drawing = True
            self._send("draw")

    def finish(self, log: Log) -> List[Path]:
        """Write the page and wait for it; returns report.html and its folder for MLflow ([] when it failed,
        said in one warning line, as :func:`automl.sweep.report.report_after_sweep`)."""
        self.draw()
        self._send("write")
        result = {}
        try:
            self._close_stdin()
            for line in self.process.stdout:
                line = line.rstrip("\n")
                if line.startswith(RESULT_PREFIX):
                    result = json.loads(line[len(RESULT_PREFIX):])
                elif line.strip():
                    log(line)
            self.process.wait()
        except KeyboardInterrupt:   # Ctrl+C while it draws: the sweep still closes its MLflow run
            self.cancel()
            log(f"warning: the sweep report was interrupted; build it with `tao-automl report {self.results_dir}`")
            return []
        self.seconds = float(result.get("draw_seconds", 0.0)) + float(result.get("write_seconds", 0.0))
        if not result.get("html"):
            reason = result.get("error") or f"the report process exited with code {self.process.returncode}"
            log(f"warning: the sweep report was not written ({reason}); retry with "
                f"`tao-automl report {self.results_dir}`")
            return []
        html = Path(result["html"])
        log(f"report: {html}")
        return [html, html.parent / "report"]

    def cancel(self) -> None:
        """End the child (the sweep stopped before its end); nothing is written."""
        self._close_stdin()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def _send(self, line: str) -> None:
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):   # it died: finish() says so
            pass

    def _close_stdin(self) -> None:
        try:
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass


def shared_threads() -> int:
    """Torch threads for the report and for the driver's export, which run side by side: half the CPUs each.
    Torch's OpenMP threads spin while they wait, so with a full set each, both ran 2-3x slower on two cores."""
    from trainers.rtdetr.data.build import available_cpus

    return max(1, available_cpus() // 2)


def _prepare(skill: str) -> None:
    """What drawing imports, imported while the trials still train, and the skill's spec validator built
    (only speed depends on this: drawing after a 3-trial sweep took 6.4 s without the MLflow, fANOVA and
    COCOeval imports, 2.5 s with them).  Torch gets its share of the cores (shared_threads)."""
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (the MLflow client's store for mlflow.db)
    import optuna.importance  # noqa: F401  (fANOVA, and scikit-learn under it)
    import torch
    from mlflow.tracking import MlflowClient  # noqa: F401
    from PIL import ImageDraw  # noqa: F401
    from pycocotools.cocoeval import COCOeval  # noqa: F401

    from automl.skills import find_skill
    from automl.spec import load_spec  # noqa: F401
    from trainers.rtdetr.annotate import draw_detections  # noqa: F401
    from trainers.rtdetr.data import build_dataloader  # noqa: F401
    from trainers.rtdetr.engine.coco_eval import load_coco_ground_truth  # noqa: F401
    from trainers.rtdetr.engine.evaluation import predict_coco  # noqa: F401
    from trainers.rtdetr.load import model_from_checkpoint  # noqa: F401

    from . import charts, confusion, html, study, sweep_folder, winner  # noqa: F401

    find_skill(skill).validator()
    torch.set_num_threads(shared_threads())


def main(argv: Optional[List[str]] = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the driver decides when the report stops
    parser = argparse.ArgumentParser(prog="python -m automl.sweep.report.background")
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--skill", default="rtdetr")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    from . import _one_line, draw_report, write_report

    def say(line: str) -> None:
        print(line, flush=True)

    result = {}
    try:
        _prepare(args.skill)
        if sys.stdin.readline().strip() != "draw":
            return 0
        started = time.monotonic()
        drawn = draw_report(args.results_dir, skill=args.skill, tracking_uri=args.tracking_uri, log=say)
        result["draw_seconds"] = time.monotonic() - started
        if sys.stdin.readline().strip() != "write":
            return 0
        started = time.monotonic()
        report = write_report(drawn, log_to_mlflow=False, log=say)
        result.update(html=str(report.html), write_seconds=time.monotonic() - started)
    except Exception as error:   # the sweep's results are on disk already; the driver says it in one line
        result["error"] = _one_line(error)
    say(RESULT_PREFIX + json.dumps(result))
    return 0


if __name__ == "__main__":
    from automl.cli import exit_now

    exit_now(main())   # no module teardown (torch, matplotlib): ~1.5 s the driver, reading to the end, waited
