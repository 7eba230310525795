"""The sweep report: ``results_dir/automl/report.html`` and its PNGs in ``results_dir/automl/report/``.

    folder (trials.csv, trial folders, best/, MLflow's space and settings)
    -> rebuilt Optuna study -> optimisation history, parallel coordinates, importances, Pareto front
    -> the winner on its validation set -> precision-recall, confusion matrix, sample images
    -> one self-contained HTML page (images embedded), logged to the sweep's MLflow parent run.

:func:`build_report` (re)builds it from the folder alone (``tao-automl
report``); :func:`report_after_sweep` is the sweep's last step, which only
warns when the report fails, so a sweep's results never depend on it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional

from trainers.atomic_write import write_text_atomic

Log = Callable[[str], None]


@dataclass
class Report:
    html: Path
    images: List[Path]
    notes: List[str]
    parent_run_id: Optional[str] = None


def build_report(results_dir: Path, *, skill: str = "rtdetr", tracking_uri: Optional[str] = None,
                 log_to_mlflow: bool = True, log: Log = print) -> Report:
    """Write report.html and the PNGs for the sweep in ``results_dir``; log them to its MLflow parent run."""
    return write_report(draw_report(results_dir, skill=skill, tracking_uri=tracking_uri, log=log),
                        log_to_mlflow=log_to_mlflow, log=log)


@dataclass
class DrawnReport:
    """Everything of a report but the page: the charts and the winner's figures, drawn as PNGs."""

    folder: Any
    charts: List[Any]
    winner: Any
    notes: List[str]


def draw_report(results_dir: Path, *, skill: str = "rtdetr", tracking_uri: Optional[str] = None,
                log: Log = print) -> DrawnReport:
    """The expensive part of :func:`build_report`: read the folder, rebuild the study, draw the charts and
    run the winner on its validation set.  The page itself is :func:`write_report` (its files section
    lists what exists when it is written, e.g. the ONNX export a sweep makes meanwhile)."""
    from . import charts as chart_kinds
    from .study import rebuild_pareto_study, rebuild_study
    from .sweep_folder import read_sweep_folder
    from .winner import WinnerFigures, analyse_winner

    folder = read_sweep_folder(results_dir, tracking_uri)
    out_dir = folder.report_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with _quiet_optuna():
        study = rebuild_study(folder)
        charts = [chart_kinds.optimisation_history(study, folder, out_dir),
                  chart_kinds.parallel_coordinates(study, folder, out_dir),
                  chart_kinds.parameter_importances(study, folder, out_dir),
                  chart_kinds.pareto_front(rebuild_pareto_study(folder), folder, out_dir)]
    notes = []
    if folder.space is None:
        notes.append("The search space was not found in MLflow; parameter ranges are inferred from the values "
                     "the trials took.")
    try:
        winner = analyse_winner(folder, skill, out_dir, log)
    except Exception as error:   # a winner that cannot be re-run still leaves the sweep's charts
        winner = WinnerFigures(note=f"the winner could not be evaluated again: {_one_line(error)}")
    return DrawnReport(folder=folder, charts=charts, winner=winner, notes=notes)


def write_report(drawn: DrawnReport, *, log_to_mlflow: bool = True, log: Log = print) -> Report:
    """report.html from :func:`draw_report`'s figures; stale PNGs removed; logged to MLflow if asked."""
    from .html import render_report

    folder, charts, winner = drawn.folder, drawn.charts, drawn.winner
    page = render_report(folder, charts, winner, drawn.notes)
    html = write_text_atomic(folder.report_file, page)
    images = [c.path for c in charts + winner.charts if c.path is not None] + list(winner.samples)
    for stale in folder.report_dir.glob("*.png"):   # charts of an earlier build that this one did not draw
        if stale not in images:
            stale.unlink(missing_ok=True)
    if log_to_mlflow and folder.parent_run_id:
        from .publish import log_report_artifacts

        log_report_artifacts(folder, log)
    return Report(html=html, images=images, notes=drawn.notes + [c.note for c in charts if c.note],
                  parent_run_id=folder.parent_run_id)


def report_after_sweep(skill: str, settings, log: Log = print) -> List[Path]:
    """The sweep's last step: the report, or one warning line.  Returns the paths for the caller to log to
    MLflow (report.html and the report folder), [] when it failed."""
    try:
        report = build_report(settings.results_dir, skill=skill, tracking_uri=settings.tracking_uri,
                              log_to_mlflow=False, log=log)
    except Exception as error:   # the sweep's results are already on disk; a report must never lose them
        log(f"warning: the sweep report was not written ({_one_line(error)}); retry with "
            f"`tao-automl report {settings.results_dir}`")
        return []
    except KeyboardInterrupt:   # Ctrl+C while it draws: the sweep still closes its MLflow run
        log(f"warning: the sweep report was interrupted; build it with `tao-automl report {settings.results_dir}`")
        return []
    log(f"report: {report.html}")
    return [report.html, report.html.parent / "report"]


@contextlib.contextmanager
def _quiet_optuna():
    """Optuna logs every study it creates; the report's rebuilt studies are not news."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__
