"""``run_sweep``: a Ray Tune experiment of plain-training trials, from spec to exported winner.

    spec dict + settings -> search space -> Tuner(searcher, scheduler, trainable=run_trial)
    -> trials (child processes) -> trials.csv, MLflow, console -> best trial -> best/, best_spec.yaml,
    export/model.onnx (checked in ONNX Runtime), a TensorRT engine where a GPU and TensorRT exist.

Ray's experiment state lives in ``results_dir/automl/ray`` (or ``--storage-path``,
a shared filesystem on a cluster); ``--resume`` restores it, with the searcher's
state, and finishes the remaining budget.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

from search_spaces.parameters import SearchSpace
from trainers.atomic_write import write_text_atomic
from trainers.errors import UserError

from .records import TrialRecord, TrialsTable
from .settings import SweepSettings

EXPERIMENT_NAME = "sweep"
TIMINGS_FILE = "timings.json"   # where the driver's own time went (benchmarks/bench_sweep.py reads it)
Log = Callable[[str], None]
# How long a reused Ray actor waits for the previous trial's thread to end (Ray's default: 2 s).  A
# stopped trial's thread ends only once its trainer's process group is gone (child.py: SIGTERM, SIGKILL
# after 10 s); an actor that cannot be reset in time fails the NEXT trial.
THREAD_TIMEOUT_VARIABLE, THREAD_TIMEOUT_SECONDS = "TUNE_FUNCTION_THREAD_TIMEOUT_S", "30"


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


def run_sweep(skill: str, spec: Dict[str, Any], space: SearchSpace, settings: SweepSettings,
              log: Log = print) -> SweepOutcome:
    started = time.monotonic()
    if not space.parameters and settings.algorithm != "pbt":
        raise UserError("the search space is empty: nothing to sweep (check automl.hyperparameters / "
                        "remove_hyperparameters, or run plain training)")
    settings.automl_dir.mkdir(parents=True, exist_ok=True)
    experiment = Path(settings.ray_storage) / EXPERIMENT_NAME
    _check_fresh_or_resume(settings, experiment)

    import ray  # noqa: F401  (Ray's core first, once; Tune, the searchers and MLflow come while ray.init runs)

    # The experiment state is written at least every second: a killed driver loses no more.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")   # our trials.csv and MLflow instead
    os.environ.setdefault(THREAD_TIMEOUT_VARIABLE, THREAD_TIMEOUT_SECONDS)   # see reuse_actors(); workers inherit it
    # ... so Ray's result analysis finds no result.json / progress.csv, and would say so at the end.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # A local ray.init mostly waits for Ray's processes to start: meanwhile one thread opens the MLflow
    # store (its import and SQLite file), then imports Ray Tune and the searchers.  One thread, not two:
    # on loaded cores Ray gives its raylet only 30 s to register (and the thread yields to it: see
    # _yield_to_ray).  ray.init itself stays in this thread:
    # Ray's processes die with the thread that started them (PR_SET_PDEATHSIG).  Joining a cluster is
    # quick and may fail on a bad address: then nothing is written before it has worked.
    timings: Dict[str, float] = {"started_unix": time.time()}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweep-setup", initializer=_yield_to_ray) as pool:
        if settings.ray_address:
            ray_started = _timed(timings, "ray_start", _start_ray, settings)
        tracker_ready = pool.submit(_timed, timings, "mlflow_store", _tracker, settings, spec, space, log)
        imported = pool.submit(_import_tune_side)
        if not settings.ray_address:
            ray_started = _timed(timings, "ray_start", _start_ray, settings)
        tracker = tracker_ready.result()
        tune, attach, TrialContext, run_trial = imported.result()
    table = TrialsTable(settings.automl_dir / "trials.csv", settings.metric)
    attach(settings, table, tracker, log)

    context = TrialContext(skill=skill, base_spec=spec, settings=settings, cwd=os.getcwd())
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), resources)
    if settings.resume and experiment.is_dir():
        log(f"resuming the sweep in {experiment} ({len(table.finished())} trials already finished)")
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = _new_tuner(trainable, space, settings)
    log(f"sweep: {settings.algorithm}, {settings.max_trials} trials x up to {settings.max_epochs} epochs, "
        f"{_concurrency(settings)} at a time, {resources['cpu']:g} CPU / {resources['gpu']:g} GPU each; "
        f"{len(space.parameters)} parameters: {', '.join(space.names())}")
    report = _start_report(skill, settings, log)   # its imports run while the trials train
    timings["setup"] = time.monotonic() - started   # imports, spec checks, Ray, MLflow, the Tuner
    fit_started = time.monotonic()
    try:
        tuner.fit()
    except BaseException:
        if report is not None:
            report.cancel()
        raise
    finally:
        timings["fit"] = time.monotonic() - fit_started
        table.mark_interrupted()
        table.save()
    finish_started = time.monotonic()
    # Ray is not needed any more: it shuts down (seconds) while the winner is exported and reported.
    ray_stopping = _stop_ray_in_background() if ray_started else None
    outcome = finish(skill, spec, settings, table, tracker, log, report=report)
    if ray_stopping is not None:
        _timed(outcome.timings, "ray_shutdown_wait", ray_stopping.join)
    outcome.timings.update(timings, finish=time.monotonic() - finish_started)
    outcome.wall_seconds = time.monotonic() - started
    outcome.timings["run_sweep"] = outcome.wall_seconds
    write_text_atomic(settings.automl_dir / TIMINGS_FILE, json.dumps(outcome.timings, indent=1))
    return outcome


def _yield_to_ray() -> None:
    """The set-up thread runs at the lowest CPU priority (Linux: per thread), so on loaded cores Ray's
    own starting processes (GCS, raylet: 30 s to register) come first; on idle cores it changes nothing."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def _import_tune_side():
    """Ray Tune, the searchers and our trial modules (seconds of imports, beside ray.init)."""
    from ray import tune

    from . import schedulers, searchers  # noqa: F401  (used by _new_tuner)
    from .callback import attach
    from .trial import TrialContext, run_trial

    return tune, attach, TrialContext, run_trial


def _start_report(skill: str, settings: SweepSettings, log: Log):
    """The report's child process (report/background.py), or None when it cannot start (the report is
    then drawn in this process at the end)."""
    from .report.background import ReportProcess

    try:
        return ReportProcess(settings.results_dir, skill, settings.tracking_uri)
    except OSError as error:
        log(f"note: the report will be drawn at the end ({error})")
        return None


def _stop_ray_in_background() -> threading.Thread:
    import ray

    stopping = threading.Thread(target=ray.shutdown, name="ray-shutdown")
    stopping.start()
    return stopping


def _timed(timings: Dict[str, float], name: str, function, *args):
    began = time.monotonic()
    try:
        return function(*args)
    finally:
        timings[name] = time.monotonic() - began


def _check_fresh_or_resume(settings: SweepSettings, experiment: Path) -> None:
    if settings.resume:
        if not experiment.is_dir():
            raise UserError(f"--resume: no sweep to resume in {experiment.parent} (start one without --resume)")
        return
    if experiment.is_dir() or (settings.automl_dir / "trials.csv").is_file():
        raise UserError(f"{settings.automl_dir} already holds a sweep: add --resume to continue it, or set "
                        f"another results_dir")


def _start_ray(settings: SweepSettings) -> bool:
    """Start a local Ray or join ``--ray-address``; False when the caller's Ray is already up (it stays up)."""
    import ray

    if ray.is_initialized():
        return False
    if settings.ray_address:
        try:
            ray.init(address=settings.ray_address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0",
                                               THREAD_TIMEOUT_VARIABLE: THREAD_TIMEOUT_SECONDS}})
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as error:
            # A head with token authentication refuses a driver without its token only as "failed to
            # connect": `ray start --head` turns tokens on by itself where ~/.ray/auth_token exists,
            # while a driver given an explicit address never sends one unless RAY_AUTH_MODE=token.
            hint = ("" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else
                    "; if the cluster uses token authentication, set RAY_AUTH_MODE=token and its token "
                    "(RAY_AUTH_TOKEN, or the head's ~/.ray/auth_token) here")
            raise UserError(f"--ray-address {settings.ray_address}: cannot join the Ray cluster "
                            f"({(str(error).splitlines() or [type(error).__name__])[0]}){hint}") from None
        return True
    # A small object store: trials exchange files, not tensors, through Ray.
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 1024 * 1024, configure_logging=True, logging_level="ERROR")
    return True


def _concurrency(settings: SweepSettings) -> int:
    if settings.max_concurrent > 0:
        return settings.max_concurrent
    import ray

    total = ray.cluster_resources() if ray.is_initialized() else {"CPU": os.cpu_count() or 1}
    by_cpu = int(total.get("CPU", 1) // max(settings.cpus_per_trial, 1e-9))
    by_gpu = int(total.get("GPU", 0) // settings.gpus_per_trial) if settings.gpus_per_trial > 0 else by_cpu
    return max(1, min(by_cpu, by_gpu, settings.max_trials))


def _live_trials(settings: SweepSettings) -> int:
    """Tune's max_concurrent_trials: how many trials may be live (running, pending or paused) at once.

    HyperBand and BOHB halve a bracket only when every trial of it has reached the rung; with fewer live
    trials than a bracket holds, Ray would halve a partial bracket (stopping nothing) or wait for trials
    that can never start.  Their brackets are filled first; the cores still bound how many run at once
    (a paused trial holds none).
    """
    live = _concurrency(settings)
    if settings.algorithm in ("hyperband", "bohb"):
        from .schedulers import largest_bracket

        live = max(live, min(settings.max_trials, largest_bracket(settings.max_epochs, settings.reduction_factor)))
    return live


def reuse_actors(settings: SweepSettings) -> bool:
    """Whether a finished trial's Ray worker runs the next trial (Tune's ``reuse_actors``).

    A new actor is a new worker process that imports Ray Tune and our trial module: ~2 s between
    trainers on two quiet cores (6-9 s at load 9), every trial.  Reused, the next trial starts in
    milliseconds.  A trial the scheduler stopped hands its actor on only after its trainer's process
    group is ended (:func:`.trial.run_trial`'s ``finally``, within TUNE_FUNCTION_THREAD_TIMEOUT_S).
    Not with the schedulers that pause trials (HyperBand, BOHB) or clone them (PBT): a paused trial's
    cached actor would keep its trainer running past the rung until another trial took the actor.
    """
    return settings.algorithm not in ("hyperband", "bohb", "pbt")


def _new_tuner(trainable, space: SearchSpace, settings: SweepSettings):
    from ray import tune

    from search_spaces.ray_space import ray_param_space

    from .callback import SweepCallback
    from .schedulers import build_scheduler
    from .searchers import build_searcher

    if settings.algorithm == "pbt":   # PBT perturbs a population drawn at random; no model-based sampler
        search_alg, param_space = None, ray_param_space(space, seed=settings.seed)
    else:
        search_alg, param_space = build_searcher(settings, space), {}
    tune_config = tune.TuneConfig(
        search_alg=search_alg, scheduler=build_scheduler(settings, space), num_samples=settings.max_trials,
        max_concurrent_trials=_live_trials(settings), reuse_actors=reuse_actors(settings),
        trial_dirname_creator=lambda trial: trial.trial_id, trial_name_creator=lambda trial: trial.trial_id)
    run_config = tune.RunConfig(
        name=EXPERIMENT_NAME, storage_path=settings.ray_storage, verbose=0,
        failure_config=tune.FailureConfig(max_failures=settings.max_retries),
        # PBT clones from checkpoints other trials reported a while ago: keep a few.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if settings.algorithm == "pbt" else 2),
        callbacks=[SweepCallback(settings)])
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


def _tracker(settings: SweepSettings, spec: Dict[str, Any], space: SearchSpace, log: Log):
    from .tracking import SweepTracker

    tracker = SweepTracker(settings.tracking_uri)
    tracker.start_sweep(str(settings.results_dir), run_name=f"sweep {settings.results_dir.name}", spec=spec,
                        space=space.to_json(), settings=settings.to_json())
    return tracker


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
    report = report or _start_report(skill, settings, log)
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
            _timed(outcome.timings, "export", _deploy, outcome, trial_spec, settings, log)
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
        artifacts += _timed(outcome.timings, "report", report.finish, log)   # the wait for it: what it adds
        outcome.timings["report_process"] = report.seconds   # its own drawing and writing, beside the export
    else:
        from .report import report_after_sweep

        artifacts += _timed(outcome.timings, "report", report_after_sweep, skill, settings, log)
    if tracker is not None:
        summary = None if best is None else {
            "trial_id": best.trial_id, "value": best.best_value, "epoch": best.best_epoch, "values": best.values}
        _timed(outcome.timings, "mlflow_finish", lambda: tracker.finish_sweep(best=summary, artifacts=artifacts))


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
    log(f"disk used by the sweep: {_disk_usage(settings.automl_dir) / 1e6:.1f} MB in {settings.automl_dir}")
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


def _disk_usage(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
