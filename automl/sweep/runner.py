"""``run_sweep``: a Ray Tune experiment of plain-training trials, from spec to exported winner.

    spec dict + settings -> search space -> Tuner(searcher, scheduler, trainable=run_trial)
    -> trials (child processes) -> trials.csv, MLflow, console -> best trial -> best/, best_spec.yaml,
    export/model.onnx (checked in ONNX Runtime), a TensorRT engine where a GPU and TensorRT exist.

Ray's experiment state lives in ``results_dir/automl/ray`` (or ``--storage-path``,
a shared filesystem on a cluster); ``--resume`` restores it, with the searcher's
state, and finishes the remaining budget.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict

from search_spaces.parameters import SearchSpace
from trainers.atomic_write import remove_stale_temporaries, write_text_atomic
from trainers.errors import UserError

from .driver_claim import DriverClaim
from .finish import SweepOutcome, finish, start_report, timed
from .records import TrialsTable
from .settings import SweepSettings
from .torn_state import mend_torn_state

EXPERIMENT_NAME = "sweep"
TIMINGS_FILE = "timings.json"   # where the driver's own time went (benchmarks/bench_sweep.py reads it)
Log = Callable[[str], None]
# How long a reused Ray actor waits for the previous trial's thread to end (Ray's default: 2 s).  A
# stopped trial's thread ends only once its trainer's process group is gone (child.py: SIGTERM, SIGKILL
# after 10 s); an actor that cannot be reset in time fails the NEXT trial.
THREAD_TIMEOUT_VARIABLE, THREAD_TIMEOUT_SECONDS = "TUNE_FUNCTION_THREAD_TIMEOUT_S", "30"


def run_sweep(skill: str, spec: Dict[str, Any], space: SearchSpace, settings: SweepSettings,
              log: Log = print) -> SweepOutcome:
    started = time.monotonic()
    if not space.parameters and settings.algorithm != "pbt":
        raise UserError("the search space is empty: nothing to sweep (check automl.hyperparameters / "
                        "remove_hyperparameters, or run plain training)")
    settings.automl_dir.mkdir(parents=True, exist_ok=True)
    experiment = Path(settings.ray_storage) / EXPERIMENT_NAME
    _check_fresh_or_resume(settings, experiment)
    with DriverClaim(settings.automl_dir):
        if settings.resume:   # the killed driver's and its trainers' half-written files (their targets are whole)
            remove_stale_temporaries(settings.automl_dir)
            if experiment.is_dir():   # Ray's, torn by a kill while they were copied to the storage path
                mend_torn_state(experiment, log)
        return _run_sweep(skill, spec, space, settings, experiment, log, started)


def _run_sweep(skill: str, spec: Dict[str, Any], space: SearchSpace, settings: SweepSettings, experiment: Path,
               log: Log, started: float) -> SweepOutcome:
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
    # _lowest_priority).  ray.init itself stays in this thread:
    # Ray's processes die with the thread that started them (PR_SET_PDEATHSIG).  Joining a cluster is
    # quick and may fail on a bad address: then nothing is written before it has worked.
    timings: Dict[str, float] = {"started_unix": time.time()}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweep-setup", initializer=_lowest_priority) as pool:
        if settings.ray_address:
            ray_started = timed(timings, "ray_start", _start_ray, settings)
        tracker_ready = pool.submit(timed, timings, "mlflow_store", _tracker, settings, spec, space, log)
        imported = pool.submit(_import_tune_side)
        if not settings.ray_address:
            ray_started = timed(timings, "ray_start", _start_ray, settings)
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
        f"{_running_at_once(settings)} at a time, {resources['cpu']:g} CPU / {resources['gpu']:g} GPU each; "
        f"{len(space.parameters)} parameters: {', '.join(space.names())}")
    report = start_report(skill, settings, log)   # its imports run while the trials train
    importing = threading.Thread(target=_import_for_the_winner, name="sweep-import-export", daemon=True)
    importing.start()
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
    importing.join()   # done long ago but in the shortest sweeps; the export must not import beside it
    outcome = finish(skill, spec, settings, table, tracker, log, report=report)
    if ray_stopping is not None:
        timed(outcome.timings, "ray_shutdown_wait", ray_stopping.join)
    outcome.timings.update(timings, finish=time.monotonic() - finish_started)
    outcome.wall_seconds = time.monotonic() - started
    outcome.timings["run_sweep"] = outcome.wall_seconds
    write_text_atomic(settings.automl_dir / TIMINGS_FILE, json.dumps(outcome.timings, indent=1))
    return outcome


def _lowest_priority() -> None:
    """The calling thread runs at the lowest CPU priority (Linux: per thread), so on loaded cores Ray's
    own starting processes (GCS, raylet: 30 s to register) and the trainers come first; on idle cores it
    changes nothing."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def _import_for_the_winner() -> None:
    """The winner's export imports torch, torch.onnx, onnx and ONNX Runtime (1.7 s of the sweep's end on two
    quiet cores): imported while the trials train, at the lowest priority, so the trainers come first."""
    _lowest_priority()
    try:
        import trainers.rtdetr.export  # noqa: F401
    except Exception:   # the export itself says what is missing, at the end
        pass


def _import_tune_side():
    """Ray Tune, the searchers and our trial modules (seconds of imports, beside ray.init)."""
    from ray import tune

    from . import schedulers, searchers  # noqa: F401  (used by _new_tuner)
    from .callback import attach
    from .trial import TrialContext, run_trial

    return tune, attach, TrialContext, run_trial


def _stop_ray_in_background() -> threading.Thread:
    import ray

    stopping = threading.Thread(target=ray.shutdown, name="ray-shutdown")
    stopping.start()
    return stopping


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
    # On overloaded cores Ray's processes can miss its fixed 30 s start-up window, which Ray reports as a bare
    # Exception: once more, then one line instead of Ray's traceback.
    try:
        _start_local_ray()
    except Exception:   # noqa: BLE001
        ray.shutdown()
        try:
            _start_local_ray()
        except Exception as error:   # noqa: BLE001
            ray.shutdown()
            first_line = (str(error).splitlines() or [type(error).__name__])[0]
            load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
            raise UserError(f"could not start a local Ray ({first_line}); load average {load}: retry when the "
                            f"machine is less busy, or join a running Ray with --ray-address") from None
    return True


def _start_local_ray() -> None:
    import ray

    # A small object store: trials exchange files, not tensors, through Ray.
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 1024 * 1024, configure_logging=True, logging_level="ERROR")


def _concurrency(settings: SweepSettings) -> int:
    return settings.max_concurrent if settings.max_concurrent > 0 else _fitting_at_once(settings)


def _running_at_once(settings: SweepSettings) -> int:
    """Trials that run together: live ones, as many as the resources hold (the rest wait or pause)."""
    return min(_live_trials(settings), _fitting_at_once(settings))


def _fitting_at_once(settings: SweepSettings) -> int:
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

    PBT ranks only live trials, so its population (max_trials) is live from the start: with more of it
    than the resources run at once, Ray pauses a trial at each perturbation interval while others wait,
    and the population takes turns.  Live trials capped at the cores would instead run pair after pair
    to the end, each pair a population of its own.
    """
    live = _concurrency(settings)
    if settings.algorithm in ("hyperband", "bohb"):
        from .schedulers import largest_bracket

        live = max(live, min(settings.max_trials, largest_bracket(settings.max_epochs, settings.reduction_factor,
                                                                  settings.grace_period)))
    if settings.algorithm == "pbt":
        live = max(live, settings.max_trials)
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
    from .schedulers import PromotingASHA, SchedulerState, build_scheduler
    from .searchers import build_searcher

    if settings.algorithm == "pbt":   # PBT perturbs a population drawn at random; no model-based sampler
        search_alg, param_space = None, ray_param_space(space, seed=settings.seed)
    else:
        search_alg, param_space = build_searcher(settings, space), {}
    scheduler, callback = build_scheduler(settings, space), SweepCallback(settings)
    callbacks = [callback]
    if isinstance(scheduler, PromotingASHA):
        callbacks.append(SchedulerState(scheduler))
        if search_alg is not None:
            scheduler.requeue_with(functools.partial(_run_again, search_alg, callback, settings))
    tune_config = tune.TuneConfig(
        search_alg=search_alg, scheduler=scheduler, num_samples=settings.max_trials,
        max_concurrent_trials=_live_trials(settings), reuse_actors=reuse_actors(settings),
        trial_dirname_creator=lambda trial: trial.trial_id, trial_name_creator=lambda trial: trial.trial_id)
    run_config = tune.RunConfig(
        name=EXPERIMENT_NAME, storage_path=settings.ray_storage, verbose=0,
        failure_config=tune.FailureConfig(max_failures=settings.max_retries),
        # PBT clones from checkpoints other trials reported a while ago: keep a few.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if settings.algorithm == "pbt" else 2),
        callbacks=callbacks)
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


def _run_again(searcher, callback, settings: SweepSettings, trial_id: str) -> bool:
    """The scheduler asks for a stopped trial's configuration again (:class:`.schedulers.PromotingASHA`)."""
    if not searcher.requeue(trial_id):
        return False
    callback.log(f"trial {trial_id} stopped at the first rung before it held {settings.reduction_factor} results "
                 f"and now ranks in its top 1/{settings.reduction_factor}: its configuration runs again next")
    return True


def _tracker(settings: SweepSettings, spec: Dict[str, Any], space: SearchSpace, log: Log):
    from .tracking import SweepTracker

    tracker = SweepTracker(settings.tracking_uri)
    tracker.start_sweep(str(settings.results_dir), run_name=f"sweep {settings.results_dir.name}", spec=spec,
                        space=space.to_json(), settings=settings.to_json())
    return tracker
