"""The end of a sweep: the winner kept, exported and reported, and the summary printed.

    trials.csv -> best trial (or the Pareto front's most accurate) -> best/, best_spec.yaml ->
    export/model.onnx (checked in ONNX Runtime), a TensorRT engine where a GPU and TensorRT exist,
    quantize / distill when asked -> report.html (drawn by its own process meanwhile) -> MLflow closed.
"""
from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

from trainers.atomic_write import write_text_atomic

from .records import TrialRecord, TrialsTable
from .settings import SweepSettings

Log = Callable[[str], None]


@dataclass
class SweepOutcome:
    """What a finished sweep leaves and where."""

    best: Optional[TrialRecord]
    trials: List[TrialRecord]
    automl_dir: Path
    best_checkpoint: Optional[Path] = None
    best_spec: Optional[Path] = None
    onnx_file: Optional[Path] = None
    engine_file: Optional[Path] = None
    wall_seconds: float = 0.0
    artifacts: Dict[str, Any] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)   # phase -> seconds (see run_sweep)


def start_report(skill: str, settings: SweepSettings, log: Log):
    """The report's child process (report/background.py), or None when it cannot start (the report is
    then drawn in this process at the end)."""
    from .report.background import ReportProcess

    try:
        return ReportProcess(settings.results_dir, skill, settings.tracking_uri)
    except OSError as error:
        log(f"note: the report will be drawn at the end ({error})")
        return None


def timed(timings: Dict[str, float], name: str, function, *args):
    began = time.monotonic()
    try:
        return function(*args)
    finally:
        timings[name] = time.monotonic() - began


def finish(skill: str, spec: Dict[str, Any], settings: SweepSettings, table: TrialsTable, tracker,
           log: Log, report=None) -> SweepOutcome:
    """Keep the winner: best/, best_spec.yaml, the ONNX export and (where possible) a TensorRT engine.

    The report (``report``: run_sweep's :class:`.report.background.ReportProcess`, else one started
    here) is drawn by its own process while this one exports the winner, and waited for before MLflow
    is closed.
    """
    from .tidy import wait_for_tidying
    from .trial import BEST_CHECKPOINT, SPEC_FILE

    wait_for_tidying()   # trial folders final (trainers gone, checkpoints slimmed) before the winner's is copied
    best, front_files = table.best(settings.mode), []
    if settings.multi_objective:   # pareto.csv, MLflow; the front's most accurate trial wins (pareto.py)
        from .pareto import keep_front

        best, front_files = keep_front(table, settings, tracker, log)
    outcome = SweepOutcome(best=best, trials=sorted(table.records.values(), key=lambda r: r.trial_id),
                           automl_dir=settings.automl_dir)
    artifacts: List[Path] = [table.path] + front_files
    trial_spec: Optional[Dict[str, Any]] = None
    if best is not None:
        folder = Path(best.trial_dir)
        best_dir = settings.automl_dir / "best"
        best_dir.mkdir(parents=True, exist_ok=True)
        source = folder / BEST_CHECKPOINT
        if source.is_file():
            outcome.best_checkpoint = best_dir / "model_best.pth"
            shutil.copy2(source, outcome.best_checkpoint)
        trial_spec = yaml.safe_load((folder / SPEC_FILE).read_text())
        trial_spec["results_dir"] = str(settings.results_dir)   # retraining lands in results_dir/train
        outcome.best_spec = settings.automl_dir / "best_spec.yaml"
        write_text_atomic(outcome.best_spec, yaml.safe_dump(trial_spec, sort_keys=False))
        shutil.copy2(outcome.best_spec, best_dir / "best_spec.yaml")
        artifacts.append(outcome.best_spec)
    report = report or start_report(skill, settings, log)
    try:
        _deliver(skill, settings, outcome, trial_spec, artifacts, tracker, report, log)
    except BaseException:
        if report is not None:
            report.cancel()
        raise
    _print_summary(outcome, settings, table, log)
    return outcome


def _deliver(skill: str, settings: SweepSettings, outcome: SweepOutcome, trial_spec: Optional[Dict[str, Any]],
             artifacts: List[Path], tracker, report, log: Log) -> None:
    """The winner's export (and quantize / distill) beside the report's drawing; MLflow closed last."""
    best = outcome.best
    if report is not None:
        report.draw()   # best/ and trials.csv are final: the report is drawn while the winner is exported
    if best is not None:
        if outcome.best_checkpoint is not None:
            with _sharing_cores(report):
                timed(outcome.timings, "export", _deploy, outcome, trial_spec, settings, log)
            if settings.quantize or settings.distill_from:
                from .winner import distill_winner, quantize_winner

                if settings.distill_from:
                    outcome.artifacts["distill"] = distill_winner(skill, outcome, settings, log)
                if settings.quantize:
                    outcome.artifacts["quantize"] = quantize_winner(skill, outcome, settings, log)
    for path in (outcome.onnx_file, outcome.engine_file):
        if path is not None:
            artifacts.append(path)
    if report is not None:   # report.html + PNGs; a failure is one warning line, never fatal
        artifacts += timed(outcome.timings, "report", report.finish, log)   # the wait for it: what it adds
        outcome.timings["report_process"] = report.seconds   # its own drawing and writing, beside the export
    else:
        from .report import report_after_sweep

        artifacts += timed(outcome.timings, "report", report_after_sweep, skill, settings, log)
    if tracker is not None:
        summary = None if best is None else {
            "trial_id": best.trial_id, "value": best.best_value, "epoch": best.best_epoch, "values": best.values}
        timed(outcome.timings, "mlflow_finish", lambda: tracker.finish_sweep(best=summary, artifacts=artifacts))


@contextlib.contextmanager
def _sharing_cores(report):
    """While the report's process draws, the export's torch takes only its share of the cores."""
    if report is None:
        yield
        return
    import torch

    from .report.background import shared_threads

    threads = torch.get_num_threads()
    torch.set_num_threads(shared_threads())
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _deploy(outcome: SweepOutcome, trial_spec: Dict[str, Any], settings: SweepSettings, log: Log) -> None:
    from trainers.rtdetr.export import export_onnx

    height, width = (trial_spec.get("dataset", {}).get("augmentation", {}).get("eval_spatial_size") or [640, 640])
    if settings.latency_aware:   # the shape its latency was measured at (latency.py)
        from .latency import deploy_shape

        height, width, _ = deploy_shape(trial_spec, settings.deploy_size)
    onnx_file = settings.automl_dir / "export" / "model.onnx"
    report = export_onnx(outcome.best_checkpoint, onnx_file, input_height=int(height), input_width=int(width),
                         opset_version=17, log=None)
    log(report.line())
    outcome.onnx_file = Path(report.onnx_file)
    if not report.passed:   # kept for inspection, but said plainly: its detections differ from PyTorch's
        log(f"warning: the exported model's ONNX Runtime outputs differ from PyTorch's; check {onnx_file} "
            f"before deploying it")
        outcome.artifacts["onnx_check"] = "FAILED"
    try:
        from trainers.rtdetr.tensorrt import build_engine_if_possible
    except ImportError:
        return
    engine = build_engine_if_possible(outcome.onnx_file, settings.automl_dir / "gen_trt_engine" / "model.engine",
                                      precision="FP16", log=log)
    outcome.engine_file = Path(engine) if engine else None


def _print_summary(outcome: SweepOutcome, settings: SweepSettings, table: TrialsTable, log: Log) -> None:
    counts: Dict[str, int] = {}
    for record in table.records.values():
        counts[record.status] = counts.get(record.status, 0) + 1
    log("")
    log(format_table(table, settings))
    log("trials: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    best = outcome.best
    if best is None:
        log(f"no trial produced a {settings.metric}: see the reasons above and in {table.path}")
    else:
        latency = "" if best.latency_ms is None else f", latency {best.latency_ms:.2f} ms ({best.latency_runtime})"
        log(f"best trial {best.trial_id}: {settings.metric} {best.best_value:.4f} at epoch {best.best_epoch} "
            f"({best.status}, {best.epochs_run} epochs{latency})")
        for name, path in (("best checkpoint", outcome.best_checkpoint), ("best spec", outcome.best_spec),
                           ("ONNX model", outcome.onnx_file), ("TensorRT engine", outcome.engine_file)):
            if path is not None:
                log(f"  {name}: {path}")
    if settings.multi_objective:
        from .pareto import PARETO_FILE, format_front, pareto_front

        log(format_front(pareto_front(list(table.records.values()), settings.mode), settings.metric))
        log(f"pareto.csv: {settings.automl_dir / PARETO_FILE} (the most accurate front trial is exported)")
    log(f"trials.csv: {table.path}")
    log(f"disk used by the sweep: {disk_usage(settings.automl_dir) / 1e6:.1f} MB in {settings.automl_dir}")
    if settings.mlflow_uri:
        log(f"MLflow: {settings.mlflow_uri}")
    else:
        log(f"MLflow UI: tao-automl ui {settings.results_dir}")


def format_table(table: TrialsTable, settings: SweepSettings) -> str:
    """The trials as an aligned text table, best first."""
    records = sorted(table.records.values(), key=lambda r: (r.best_value is None, -(r.best_value or 0.0)
                     if settings.mode == "max" else (r.best_value or 0.0)))
    names = sorted({k for r in records for k in r.values})
    header = ["trial", "status", settings.metric, "epoch", "epochs", "seconds"] + [n.split(".")[-1] for n in names]
    rows = [[r.trial_id, r.status, "-" if r.best_value is None else f"{r.best_value:.4f}",
             "-" if r.best_epoch is None else str(r.best_epoch), str(r.epochs_run), f"{r.wall_seconds:.0f}"]
            + [_cell(r.values.get(n)) for n in names] for r in records]
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths))
                     for row in [header] + rows)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def disk_usage(folder: Path) -> int:
    """Bytes of the files under ``folder``, each counted once however many names it has (a trainer links
    its epoch, best and latest checkpoints when they hold the same state)."""
    sizes = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            sizes[(stat.st_dev, stat.st_ino)] = stat.st_size
    return sum(sizes.values())
