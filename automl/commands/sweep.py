"""``tao-automl sweep``: a hyperparameter sweep of the skill's trainer (Ray Tune + Optuna + MLflow).

    tao-automl sweep --skill rtdetr -e spec.yaml [--algorithm asha] [--max-trials 8] [key=value ...]

Every flag has a spec key in the ``automl`` section (NVIDIA TAO's names where
they exist); a flag wins over the spec.  Results go to ``results_dir/automl/``:
trials.csv, best_spec.yaml, best/, export/model.onnx, mlflow.db, trials/.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from automl.commands import add_spec_arguments

# flag -> (settings field, type, help)
FLAGS = [
    ("--algorithm", "algorithm", str, "bayesian | random | grid | asha (default) | hyperband | bohb | pbt"),
    ("--sampler", "sampler", str, "tpe (default) | gp | random: the Optuna sampler of bayesian/asha/hyperband"),
    ("--max-trials", "max_trials", int, "number of trials (automl.automl_max_recommendations, default 8)"),
    ("--max-epochs", "max_epochs", int, "epochs of a full trial (automl.automl_max_epochs; default train.num_epochs)"),
    ("--grace-period", "grace_period", int, "epochs before a scheduler may stop a trial (default 1)"),
    ("--reduction-factor", "reduction_factor", int, "successive halving's reduction factor (default 3)"),
    ("--max-concurrent", "max_concurrent", int, "trials at once (default: as many as the resources hold)"),
    ("--seed", "seed", int, "seeds the sampler and the scheduler (default 0)"),
    ("--metric", "metric", str, "metric to optimise (default val_mAP50; names with 'loss' are minimised)"),
    ("--cpus-per-trial", "cpus_per_trial", float, "CPU cores per trial (default 1)"),
    ("--gpus-per-trial", "gpus_per_trial", float, "GPUs per trial, fractions allowed (default: 1 with a GPU)"),
    ("--max-retries", "max_retries", int, "retries of a failed trial (default 1)"),
    ("--ray-address", "ray_address", str, "join this Ray cluster (e.g. 10.0.0.1:6379) instead of a local Ray "
                                          "(default: $RAY_ADDRESS when set)"),
    ("--storage-path", "storage_path", str, "Ray's experiment folder (a shared filesystem on a cluster)"),
    ("--mlflow-uri", "mlflow_uri", str, "MLflow tracking URI (default: sqlite in results_dir/automl/mlflow.db)"),
    ("--objective", "objective", str, "map50 (default) | map50-latency: also measure each trial's deploy latency "
                                      "(automl.automl_objective)"),
    ("--latency-budget-ms", "latency_budget_ms", float,
     "latency budget in ms: trials over it stop untrained and never win (automl.automl_latency_budget_ms); "
     "map50-latency without a budget searches two objectives (needs --algorithm bayesian, random or grid)"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="hyperparameter sweep (Ray Tune trials, Optuna search, MLflow tracking)",
        description="Search the skill's AutoML space (train.schema.json's automl_default_parameters plus the "
                    "spec's automl edits): each trial is a plain training run; the best is exported to ONNX.")
    for flag, dest, kind, text in FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep every trial's checkpoints (automl.automl_delete_intermediate_ckpt: false)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep in results_dir/automl after an interruption")
    parser.add_argument("--quantize", action="store_true",
                        help="also quantize the winner to INT8 ONNX (calibration: dataset.quant_calibration_data_sources, "
                             "else the validation images) into results_dir/automl/quantize/")
    parser.add_argument("--distill-from", dest="distill_from", default=None, metavar="TEACHER",
                        help="retrain the winner's configuration as a student of this teacher checkpoint "
                             "into results_dir/automl/distill/")
    parser.add_argument("--schema", default=None, help="read the search space from this train schema instead")
    add_spec_arguments(parser, "spec overrides, e.g. train.num_epochs=5 automl.automl_max_recommendations=4")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return sweep(args.skill, args.spec, args.overrides, flags_of(args), schema=args.schema)


def flags_of(args: argparse.Namespace) -> dict:
    flags = {dest: getattr(args, dest, None) for _, dest, _, _ in FLAGS}
    if not flags["ray_address"] and os.environ.get("RAY_ADDRESS"):
        # Ray's own convention for "the cluster to use" (set on cluster nodes and in Ray jobs); a local Ray
        # started with it set would fail anyway (ray.init refuses num_cpus when joining).
        flags["ray_address"] = os.environ["RAY_ADDRESS"]
    flags["resume"] = bool(getattr(args, "resume", False))
    flags["quantize"] = bool(getattr(args, "quantize", False))
    flags["distill_from"] = getattr(args, "distill_from", None)
    if getattr(args, "keep_checkpoints", False):
        flags["delete_intermediate_checkpoints"] = False
    return flags


def sweep(skill_name: str, spec_path, overrides, flags: dict, schema=None) -> int:
    """Load and check everything, then run the sweep (also ``train --automl-policy on``)."""
    from automl.search_space import search_space_for
    from automl.skills import find_skill
    from automl.spec import load_spec, load_spec_dict
    from automl.sweep import run_sweep, settings_from
    from trainers.errors import UserError

    skill = find_skill(skill_name)
    spec = load_spec_dict(skill, spec_path, overrides, "train")
    load_spec(skill, spec_path, overrides, "train")   # what the trainer itself would refuse, refused now
    settings = settings_from(spec, {**flags, "deploy_size": _explicit_export_size(spec_path, overrides)},
                             gpu_count=_gpu_count())
    if settings.distill_from and not Path(settings.distill_from).is_file():   # fail now, not after the sweep
        raise UserError(f"--distill-from {settings.distill_from}: file not found")
    if settings.latency_aware:   # the knobs that trade accuracy for speed join the space
        from automl.sweep.latency_space import latency_search_space

        space = latency_search_space(skill, spec, schema, settings.deploy_size)
    else:
        space = search_space_for(skill, spec, schema)
    skill_arg = skill_name if "/" not in str(skill_name) else str(skill.root)
    outcome = run_sweep(skill_arg, spec, space, settings)
    return 0 if outcome.best is not None else 1


def _explicit_export_size(spec_path, overrides):
    """The deploy size when the user's own spec or overrides set export.input_height / input_width."""
    from automl.sweep.latency import explicit_export_size
    from search_spaces.overrides import apply_overrides, load_yaml_file

    user = load_yaml_file(spec_path) if spec_path is not None else {}
    user = apply_overrides(user if isinstance(user, dict) else {}, [o for o in overrides if o.startswith("export.")])
    return explicit_export_size(user)


# Device nodes that exist wherever torch.cuda can see a GPU: NVIDIA's driver, ROCm's kernel driver, WSL's GPU.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def _gpu_count() -> int:
    """The GPUs torch sees; without any GPU driver's device node the answer is 0 without importing torch
    (1-2 s of the sweep's start on a CPU machine)."""
    if sys.platform.startswith("linux") and not any(os.path.exists(path) for path in GPU_DEVICE_FILES):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
