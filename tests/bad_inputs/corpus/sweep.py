"""Sweep settings and flags, refused before Ray starts."""
from __future__ import annotations

from typing import List

from .registry import Case, argv, case


# -- sweep settings and flags (refused before Ray starts) -------------------------------------------------
def _sweep_flags(name: str, flags: List[str], fragment: str, **sections) -> Case:
    def build(world, folder):
        return argv("sweep", world, folder, *flags, **sections), fragment
    build.__name__ = name
    return build


for _name, _flags, _fragment in [
        ("sweep_zero_trials", ["--max-trials", "0"], "--max-trials"),
        ("sweep_trials_not_a_number", ["--max-trials", "many"], "many"),
        ("sweep_unknown_algorithm", ["--algorithm", "genetic"], "genetic"),
        ("sweep_unknown_sampler", ["--sampler", "cmaes"], "cmaes"),
        ("sweep_zero_cpus", ["--cpus-per-trial", "0"], "--cpus-per-trial"),
        ("sweep_gpu_without_gpu", ["--gpus-per-trial", "1"], "--gpus-per-trial"),
        ("sweep_grace_longer_than_trial", ["--algorithm", "asha", "--grace-period", "5"], "grace_period"),
        ("sweep_reduction_factor_one", ["--reduction-factor", "1"], "reduction_factor"),
        ("sweep_negative_retries", ["--max-retries", "-1"], "max_retries"),
        ("sweep_bad_metric", ["--metric=-loss"], "-loss"),
        ("sweep_resume_without_sweep", ["--resume"], "--resume"),
        ("sweep_unknown_flag", ["--max-trails", "3"], "--max-trails")]:
    case("sweep")(_sweep_flags(_name, _flags, _fragment))


@case("sweep")
def sweep_algorithm_in_spec(world, folder):
    return argv("sweep", world, folder, automl={"automl_algorithm": "annealing"}), "annealing"


@case("sweep")
def sweep_already_in_results(world, folder):
    (folder / "results" / "automl").mkdir(parents=True)
    (folder / "results" / "automl" / "trials.csv").write_text("trial_id,status\n")
    return argv("sweep", world, folder), "--resume"


# Latency objective (--objective, --latency-budget-ms; automl/sweep/settings.py check_objective).
for _name, _flags, _fragment in [
        ("sweep_latency_budget_zero", ["--latency-budget-ms", "0"], "--latency-budget-ms 0"),
        ("sweep_latency_budget_negative", ["--latency-budget-ms", "-5"], "--latency-budget-ms -5"),
        ("sweep_latency_budget_not_a_number", ["--latency-budget-ms", "abc"], "abc"),
        ("sweep_latency_budget_nan", ["--latency-budget-ms", "nan"], "--latency-budget-ms nan"),
        ("sweep_latency_budget_with_map50", ["--objective", "map50", "--latency-budget-ms", "20"],
         "needs --objective map50-latency"),
        ("sweep_two_objectives_with_asha", ["--objective", "map50-latency", "--algorithm", "asha"],
         "give --latency-budget-ms"),
        ("sweep_two_objectives_with_gp", ["--objective", "map50-latency", "--algorithm", "bayesian",
                                          "--sampler", "gp"], "--sampler gp"),
        ("sweep_unknown_objective", ["--objective", "speed"], "--objective speed")]:
    case("sweep")(_sweep_flags(_name, _flags, _fragment))


@case("sweep")
def sweep_negative_latency_budget_in_spec(world, folder):
    return argv("sweep", world, folder, automl={"automl_latency_budget_ms": -5}), "automl_latency_budget_ms"


@case("sweep")
def sweep_unknown_objective_in_spec(world, folder):
    return argv("sweep", world, folder, automl={"automl_objective": "fastest"}), "fastest"
