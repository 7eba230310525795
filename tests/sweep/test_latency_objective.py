"""Latency-aware sweeps (issue 8 part A): settings, the Optuna constraint and the two-objective study,
the Pareto front, the latency knobs of the space and their consistency rules, the over-budget stop, and
one real sweep on a local Ray with a budget that some trials exceed."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from automl.spec import load_spec, load_spec_dict
from automl.sweep.latency import LATENCY_FILE, Latency, deploy_shape, explicit_export_size, measurement_key, \
    trial_latency
from automl.sweep.latency_space import INPUT_SIZE, apply_latency_rules, at_least_as_slow, input_size_choices, \
    latency_search_space
from automl.sweep.pareto import front_winner, pareto_front, write_pareto
from automl.sweep.records import TrialRecord, TrialsTable
from automl.sweep.searchers import INFERRED_ATTR, build_searcher, latency_violation
from automl.sweep.settings import settings_from
from automl.sweep.trial import OVER_BUDGET, TIME_ATTR, over_budget_result
from trainers.errors import UserError

from .tiny_sweep import tiny_sweep_spec

ROOT = Path(__file__).resolve().parents[2]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _spec(**automl):
    return {"results_dir": "/tmp/unused", "train": {"num_epochs": 3},
            "automl": {"automl_algorithm": "asha", "automl_objective": "map50", "automl_latency_budget_ms": 0.0,
                       **automl}}


def _default_spec(*overrides: str):
    return load_spec_dict("rtdetr", None, ["results_dir=/tmp/unused", *overrides], "train")


# -- settings -----------------------------------------------------------------------------------------

def test_a_budget_makes_latency_a_constraint_and_the_spec_zero_means_no_budget():
    plain = settings_from(_spec(), {})
    assert (plain.objective, plain.latency_budget_ms, plain.latency_aware) == ("map50", None, False)
    budget = settings_from(_spec(), {"latency_budget_ms": 25.0})
    assert budget.objective == "map50-latency" and budget.latency_budget_ms == 25.0
    assert budget.latency_aware and not budget.multi_objective and budget.metrics == "val_mAP50"
    from_spec = settings_from(_spec(automl_latency_budget_ms=40), {})
    assert from_spec.latency_budget_ms == 40.0 and from_spec.algorithm == "asha"
    two = settings_from(_spec(), {"objective": "map50-latency", "algorithm": "bayesian"})
    assert two.multi_objective and two.metrics == ["val_mAP50", "latency_ms"] and two.modes == ["max", "min"]


@pytest.mark.parametrize("flags, message", [
    ({"latency_budget_ms": 0.0}, "--latency-budget-ms 0: a budget must be a positive number"),
    ({"latency_budget_ms": -5.0}, "--latency-budget-ms -5: a budget must be a positive number"),
    ({"objective": "map50", "latency_budget_ms": 5.0}, "needs --objective map50-latency"),
    ({"objective": "speed"}, "--objective speed: expected one of map50, map50-latency"),
    ({"objective": "map50-latency"}, "the asha scheduler ranks trials by one metric: use --algorithm bayesian, "
                                     "random, grid, or give --latency-budget-ms"),
    ({"objective": "map50-latency", "algorithm": "pbt"}, "the pbt scheduler ranks trials by one metric"),
])
def test_impossible_objective_settings_are_one_line_errors(flags, message):
    with pytest.raises(UserError) as error:
        settings_from(_spec(), flags)
    assert message in str(error.value) and "\n" not in str(error.value)


# -- the Optuna side ----------------------------------------------------------------------------------

def test_the_constraint_is_latency_minus_budget_feasible_at_or_below_zero():
    assert latency_violation(26.5, 20.0) == pytest.approx(6.5)
    assert latency_violation(20.0, 20.0) == 0.0 and latency_violation(12.0, 20.0) < 0


def _searcher(flags, max_trials=6):
    spec = _default_spec()
    settings = settings_from(spec, {"max_trials": max_trials, "max_epochs": 2, "seed": 0, **flags})
    space = latency_search_space("rtdetr", spec)
    return build_searcher(settings, space), settings


def test_an_over_budget_trial_is_told_complete_and_infeasible_and_a_fitting_one_feasible():
    searcher, settings = _searcher({"latency_budget_ms": 20.0})
    study = searcher._ot_study
    assert study._is_multi_objective() is False and isinstance(study.sampler, optuna.samplers.TPESampler)
    searcher.suggest("slow")
    searcher.suggest("fast")
    searcher.on_trial_complete("slow", over_budget_result(Latency(31.0, "onnxruntime", (640, 640), 1, 1), settings))
    searcher.on_trial_result("fast", {"val_mAP50": 0.4, "latency_ms": 12.0, TIME_ATTR: 1, "training_iteration": 1})
    searcher.on_trial_complete("fast", {"val_mAP50": 0.5, "latency_ms": 12.0, TIME_ATTR: 2})
    slow, fast = study.get_trials(deepcopy=False)
    assert slow.state == fast.state == optuna.trial.TrialState.COMPLETE
    assert slow.value == 0.0 and slow.user_attrs["latency_ms"] == 31.0
    assert slow.constraints == {"latency_ms": pytest.approx(11.0)}          # violated
    assert fast.value == 0.5 and fast.constraints["latency_ms"] == pytest.approx(-8.0)   # fits
    # The sampler sees them: TPE splits the infeasible trial off from the ranked ones.
    from optuna.samplers._tpe.sampler import _get_infeasible_trial_score

    assert _get_infeasible_trial_score(slow) > 0 and _get_infeasible_trial_score(fast) == 0


def test_a_model_no_smaller_in_any_knob_than_an_over_budget_one_is_no_faster():
    slow = {"model.backbone": "resnet_34", INPUT_SIZE: 448, "model.dec_layers": 3, "train.optim.lr": 1e-3}
    assert at_least_as_slow({**slow, "train.optim.lr": 1e-4}, slow)             # training values do not count
    assert at_least_as_slow({**slow, "model.backbone": "resnet_50", INPUT_SIZE: 512}, slow)
    assert not at_least_as_slow({**slow, "model.backbone": "resnet_18", INPUT_SIZE: 640}, slow)   # one knob smaller
    assert not at_least_as_slow({**slow, "model.dec_layers": 2}, slow)
    assert not at_least_as_slow({**slow, "model.nheads": 4}, slow)               # another architecture: unknown
    assert not at_least_as_slow({k: v for k, v in slow.items() if k != INPUT_SIZE}, slow)


def test_proposals_no_faster_than_an_over_budget_trial_are_skipped_as_infeasible():
    spec = _default_spec("automl.hyperparameters=[train.optim.lr,model.backbone,"
                         "dataset.augmentation.train_spatial_size]",
                         "automl.enable_disabled=[dataset.augmentation.train_spatial_size]")
    settings = settings_from(spec, {"max_trials": 14, "max_epochs": 2, "seed": 0, "latency_budget_ms": 20.0})
    space = latency_search_space("rtdetr", spec)
    assert set(space.names()) == {"train.optim.lr", "model.backbone", INPUT_SIZE}
    searcher = build_searcher(settings, space)
    searcher._ot_study.enqueue_trial({"model.backbone": "resnet_34", INPUT_SIZE: 448, "train.optim.lr": 1e-4})
    first = searcher.suggest("first")
    assert (first["model.backbone"], first[INPUT_SIZE]) == ("resnet_34", 448)
    searcher.on_trial_complete("first", over_budget_result(Latency(31.0, "onnxruntime", (448, 448), 1, 1), settings))
    proposed = []
    for index in range(12):   # about 4 in 9 of random proposals would be resnet_34+ at 448+
        config = searcher.suggest(f"t{index}")
        proposed.append((config["model.backbone"], config[INPUT_SIZE]))
        searcher.on_trial_complete(f"t{index}", {"val_mAP50": 0.1 + index / 100, "latency_ms": 12.0, TIME_ATTR: 2})
    # Larger models are skipped; the very same one may be measured once more (one measurement can be noise).
    assert not [p for p in proposed if p[0] != "resnet_18" and p[1] >= 448 and p != ("resnet_34", 448)], proposed
    skipped = [t for t in searcher._ot_study.get_trials(deepcopy=False) if INFERRED_ATTR in t.user_attrs]
    assert len(skipped) == searcher.skipped_proposals > 0
    assert all(t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs[INFERRED_ATTR] == "first"
               and t.constraints["latency_ms"] == pytest.approx(11.0) for t in skipped)
    same = {"model.backbone": "resnet_34", INPUT_SIZE: 448, "train.optim.lr": 3e-4}
    assert searcher._no_faster_than_over_budget(same) is None
    searcher.over_budget["again"] = ({**same, "train.optim.lr": 5e-4}, 29.0)
    assert searcher._no_faster_than_over_budget(same) == ("again", 29.0)   # twice over: skipped


def test_without_a_budget_the_study_has_two_objectives_and_optuna_agrees_with_our_front():
    searcher, settings = _searcher({"objective": "map50-latency", "algorithm": "bayesian"})
    study = searcher._ot_study
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    outcomes = {"t0": (0.60, 30.0), "t1": (0.55, 12.0), "t2": (0.50, 20.0), "t3": (0.62, 45.0), "t4": (0.30, 11.0)}
    records = []
    for trial_id, (value, latency) in outcomes.items():
        searcher.suggest(trial_id)
        searcher.on_trial_complete(trial_id, {"val_mAP50": value, "latency_ms": latency, TIME_ATTR: 2})
        records.append(TrialRecord(trial_id, "completed", best_value=value, latency_ms=latency))
    optuna_front = sorted(tuple(t.values) for t in study.best_trials)
    ours = pareto_front(records)
    assert sorted((r.best_value, r.latency_ms) for r in ours) == optuna_front
    assert [r.trial_id for r in ours] == ["t4", "t1", "t0", "t3"]   # fastest first; t2 is dominated by t1


# -- Pareto front ---------------------------------------------------------------------------------------

def test_the_front_keeps_non_dominated_finished_trials_and_its_most_accurate_point_wins(tmp_path):
    records = [TrialRecord("a", "completed", best_value=0.5, latency_ms=10.0, trial_dir=str(tmp_path / "a")),
               TrialRecord("b", "completed", best_value=0.5, latency_ms=12.0),       # same mAP, slower: dominated
               TrialRecord("c", "completed", best_value=0.7, latency_ms=20.0),
               TrialRecord("d", "failed", best_value=0.9, latency_ms=1.0),           # failed trials never count
               TrialRecord("e", "over_budget", latency_ms=2.0),
               TrialRecord("f", "interrupted", best_value=0.8, latency_ms=25.0),
               TrialRecord("g", "completed", best_value=0.7, latency_ms=20.0)]       # a tie: both stay
    front = pareto_front(records)
    assert [r.trial_id for r in front] == ["a", "c", "g", "f"]
    assert front_winner(front).trial_id == "f"
    path = write_pareto(front, tmp_path / "pareto.csv")
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0])[:3] == ["trial_id", "val_mAP50", "latency_ms"]
    assert [r["trial_id"] for r in rows] == ["a", "c", "g", "f"]
    assert rows[0]["checkpoint"].endswith("a/train/model_best.pth")


# -- trials.csv -----------------------------------------------------------------------------------------

def test_trials_csv_gains_latency_columns_and_an_over_budget_trial_never_wins(tmp_path):
    table = TrialsTable(tmp_path / "trials.csv")
    table.get("plain").status = "completed"
    table.save()
    assert "latency_ms" not in next(csv.reader((tmp_path / "trials.csv").open()))
    over = table.get("over")
    over.status, over.latency_ms, over.latency_runtime = "over_budget", 31.0, "onnxruntime"
    fits = table.get("fits")
    fits.status, fits.best_value, fits.latency_ms, fits.latency_runtime = "completed", 0.4, 12.5, "onnxruntime"
    table.get("plain").best_value = 0.4
    table.save()
    header = next(csv.reader((tmp_path / "trials.csv").open()))
    assert header.index("latency_ms") == header.index("best_val_mAP50") + 2 and "latency_runtime" in header
    assert over.finished and table.best().trial_id == "fits"   # a tie on mAP goes to the measured, faster one
    again = TrialsTable(tmp_path / "trials.csv")
    assert again.records["over"].status == "over_budget" and again.records["over"].latency_ms == 31.0
    assert again.records["fits"].latency_runtime == "onnxruntime" and "latency_ms" not in again.records["fits"].values


# -- the space's latency knobs --------------------------------------------------------------------------

def test_latency_sweeps_search_the_speed_knobs_and_the_input_size():
    space = latency_search_space("rtdetr", _default_spec())
    names = space.names()
    for knob in ("model.backbone", "model.hidden_dim", "model.dec_layers", "model.num_queries", "model.num_select",
                 INPUT_SIZE, "train.optim.lr"):
        assert knob in names and names.count(knob) == 1
    assert space.parameter("model.backbone").choices == ("resnet_18", "resnet_34", "resnet_50")
    assert space.parameter("model.hidden_dim").choices == (128, 192, 256)
    assert (space.parameter("model.dec_layers").low, space.parameter("model.dec_layers").high) == (1, 6)
    assert space.parameter(INPUT_SIZE).choices == (320, 384, 448, 512, 576, 640)
    # Every knob shrinks the spec's model: no backbone deeper than its own, none at all below resnet_34.
    assert latency_search_space("rtdetr", _default_spec("model.backbone=resnet_34")).parameter(
        "model.backbone").choices == ("resnet_18", "resnet_34")
    assert "model.backbone" not in latency_search_space("rtdetr", _default_spec("model.backbone=resnet_18")).names()
    assert all(size % 32 == 0 for size in input_size_choices(800)) and input_size_choices(64) == [64]


def test_the_users_choices_win_over_the_latency_knobs():
    removed = latency_search_space("rtdetr", _default_spec(
        "automl.remove_hyperparameters=[model.backbone,dataset.augmentation.train_spatial_size]")).names()
    assert "model.backbone" not in removed and INPUT_SIZE not in removed and "model.hidden_dim" in removed
    explicit = latency_search_space("rtdetr", _default_spec(
        "automl.hyperparameters=[train.optim.lr,model.dec_layers]")).names()
    assert explicit == ("train.optim.lr", "model.dec_layers")
    ranged = latency_search_space("rtdetr", _default_spec(
        "automl.range_override.model.backbone.choices=[resnet_18,resnet_34]"))
    assert ranged.parameter("model.backbone").choices == ("resnet_18", "resnet_34")
    fixed = latency_search_space("rtdetr", _default_spec(), fixed_export_size=(544, 960))
    assert INPUT_SIZE not in fixed.names() and any(e.name == INPUT_SIZE and "960" in e.reason for e in fixed.excluded)


def test_a_sampled_architecture_is_made_consistent_and_loads_as_a_spec(tmp_path):
    base = _default_spec("model.eval_idx=5")
    values = {"model.backbone": "resnet_18", "model.hidden_dim": 128, "model.dec_layers": 3,
              "model.num_queries": 120, INPUT_SIZE: 320}
    from search_spaces.overrides import apply_values

    spec = apply_values(base, {k: v for k, v in values.items() if k != INPUT_SIZE})
    spec["model"]["num_select"] = 300   # e.g. num_select not searched: must follow num_queries down
    spec = apply_latency_rules(spec, values, base)
    augmentation = spec["dataset"]["augmentation"]
    assert augmentation["train_spatial_size"] == augmentation["eval_spatial_size"] == [320, 320]
    scales = augmentation["multi_scales"]   # 480..800 at 640 -> about half
    assert all(s % 32 == 0 for s in scales) and 320 in scales and 224 <= min(scales) and max(scales) <= 416
    assert (spec["export"]["input_height"], spec["export"]["input_width"]) == (320, 320)
    assert spec["model"]["eval_idx"] == 2 and spec["model"]["feat_channels"] == [128, 128, 128]
    assert spec["model"]["num_select"] == 120
    assert apply_latency_rules(apply_values(base, {"model.dec_layers": 2}), {"model.dec_layers": 2},
                               _default_spec())["model"]["eval_idx"] == -1
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(spec))
    cfg = load_spec("rtdetr", path, [], "train")
    assert cfg.model.hidden_dim == 128 and cfg.model.eval_idx == 2


def _space_command(capsys, *argv):
    from automl import cli

    code = cli.main(["space", "--skill", "rtdetr", "--json", *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return {p["name"]: p for p in json.loads(captured.out)["parameters"]}


def test_the_space_command_shows_the_latency_knobs_when_the_sweep_would_search_them(capsys, tmp_path):
    plain = _space_command(capsys)
    assert INPUT_SIZE not in plain and "model.backbone" not in plain
    for argv in (["--objective", "map50-latency"], ["automl.automl_latency_budget_ms=40"],
                 ["automl.automl_objective=map50-latency"]):
        shown = _space_command(capsys, *argv)
        assert set(shown) == set(latency_search_space("rtdetr", _default_spec()).names()), argv
        assert shown["model.backbone"]["choices"] == ["resnet_18", "resnet_34", "resnet_50"]
    # The spec's own model sets the knobs' ranges, as in the sweep; --objective map50 wins over the spec.
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"model": {"backbone": "resnet_34", "dec_layers": 4},
                                    "automl": {"automl_latency_budget_ms": 30}}))
    shown = _space_command(capsys, "-e", str(spec))
    assert shown["model.backbone"]["choices"] == ["resnet_18", "resnet_34"] and shown["model.dec_layers"]["high"] == 4
    assert "model.backbone" not in _space_command(capsys, "-e", str(spec), "--objective", "map50")
    # A deploy size fixed by the spec is not searched: the sweep says so, and so does the command.
    fixed = _space_command(capsys, "--objective", "map50-latency", "export.input_height=544", "export.input_width=960")
    assert INPUT_SIZE not in fixed and "model.backbone" in fixed


# -- the over-budget stop and the measurement's reuse ----------------------------------------------------

def test_a_model_over_the_budget_stops_before_training_with_no_rung_for_the_scheduler():
    latency = Latency(latency_ms=31.0, runtime="onnxruntime", input_size=(320, 320), batch_size=1, threads=1)
    assert latency.over(30.0) and not latency.over(31.0) and not latency.over(None)
    settings = settings_from(_spec(), {"latency_budget_ms": 30.0})
    result = over_budget_result(latency, settings)
    assert result[OVER_BUDGET] and result[TIME_ATTR] == 0 and result["val_mAP50"] == 0.0
    assert result["latency_ms"] == 31.0 and result["latency_runtime"] == "onnxruntime"


def test_the_deploy_shape_is_the_users_export_size_else_the_evaluation_size():
    spec = _default_spec("dataset.augmentation.eval_spatial_size=[320,416]", "export.batch_size=4")
    assert deploy_shape(spec) == (320, 416, 4)
    assert deploy_shape(_default_spec(), fixed_size=(544, 960)) == (544, 960, 1)
    assert explicit_export_size({"export": {"input_width": 960}}) == (640, 960)
    assert explicit_export_size({"export": {"batch_size": 2}}) is None and explicit_export_size({}) is None


def test_a_measurement_is_reused_for_the_same_architecture_only(tmp_path):
    spec = _default_spec()
    shape = deploy_shape(spec)
    key = measurement_key(spec, shape, threads=1)
    assert key != measurement_key(_default_spec("model.backbone=resnet_18"), shape, threads=1)
    assert key != measurement_key(spec, shape, threads=2)
    assert key == measurement_key(_default_spec("train.optim.lr=0.001"), shape, threads=1)   # not the weights
    stored = Latency(latency_ms=7.5, runtime="onnxruntime", input_size=shape[:2], batch_size=1, threads=1, key=key)
    (tmp_path / LATENCY_FILE).write_text(json.dumps(stored.to_json()))
    # A matching latency.json answers at once (a child process would need a spec file that does not exist).
    assert trial_latency(spec, tmp_path / "missing.yaml", tmp_path, threads=1, iterations=5) == stored


# -- a real sweep ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_budgeted_sweep_stops_models_over_budget_and_its_winner_fits(tmp_path):
    """Tiny trials on a local Ray (about 1 minute on 2 idle cores, 2 on busy ones): the budget sits
    between the slowest resnet_18 model the sweep can propose and the fastest resnet_101 one (their
    geometric mean, measured the way trials measure; about 8 and 21 ms, so either side has 1.6x of room
    for a noisy measurement).  Seed 2's first trial is resnet_101 with one decoder layer, the smallest
    resnet_101 model: over the budget, so every later resnet_101 proposal is skipped as no faster (the
    very same model after a second measurement) and the other trials are resnet_18 models that fit."""
    # The spec's resnet_18 is the deepest backbone searched unless a range_override widens it: here it does.
    spec_file = tiny_sweep_spec(tmp_path, epochs=1, train_count=8, val_count=4,
                                searched=("train.optim.lr", "model.backbone", "model.dec_layers"),
                                automl={"range_override": {"model.backbone": {"choices": ["resnet_18", "resnet_101"]}}})

    def probe(backbone: str, dec_layers: int) -> float:
        spec = load_spec_dict("rtdetr", spec_file, [f"model.backbone={backbone}", f"model.dec_layers={dec_layers}"],
                              "train")
        folder = tmp_path / f"probe_{backbone}"
        folder.mkdir()
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
        return trial_latency(spec, folder / "spec.yaml", folder, threads=1, iterations=20, cwd=ROOT).latency_ms

    # dec_layers is searched in [1, 4]: the tiny spec's 2, halved and doubled (search_spaces/ranges.py).
    budget = round((probe("resnet_18", 4) * probe("resnet_101", 1)) ** 0.5, 3)
    done = subprocess.run(
        [sys.executable, "-m", "automl.cli", "sweep", "--skill", "rtdetr", "-e", str(spec_file),
         "--latency-budget-ms", str(budget), "--algorithm", "asha", "--max-trials", "3", "--max-concurrent", "1",
         "--seed", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    automl = tmp_path / "results" / "automl"
    rows = list(csv.DictReader((automl / "trials.csv").open()))
    assert len(rows) == 3 and all(row["latency_ms"] and row["latency_runtime"] == "onnxruntime" for row in rows)
    over = [r for r in rows if r["status"] == "over_budget"]
    fitting = [r for r in rows if r["status"] in ("completed", "pruned")]
    assert over and fitting, [(r["status"], r["model.backbone"], r["latency_ms"]) for r in rows]
    for row in over:
        assert float(row["latency_ms"]) > budget and row["epochs_run"] == "0" and not row["best_val_mAP50"]
        assert "not trained" in row["reason"] and not (Path(row["trial_dir"]) / "train").exists()
    assert all(float(r["latency_ms"]) <= budget for r in fitting)

    best_spec = yaml.safe_load((automl / "best_spec.yaml").read_text())
    # The best val_mAP50 among the trials that fit (1-epoch trials often tie; any of the tied ones may win).
    winner_id = re.search(r"best trial (\S+):", done.stdout).group(1)
    winner = next(r for r in rows if r["trial_id"] == winner_id)
    assert winner in fitting
    assert float(winner["best_val_mAP50"]) == max(float(r["best_val_mAP50"]) for r in fitting)
    assert best_spec["model"]["backbone"] == winner["model.backbone"]
    printed = float(re.search(r"latency ([0-9.]+) ms", done.stdout.split("best trial", 1)[1]).group(1))
    assert printed == pytest.approx(float(winner["latency_ms"]), abs=0.006)
    assert (automl / "export" / "model.onnx").is_file()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{automl / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tao-automl").experiment_id])
    children = {r.data.tags["tao_automl.trial_id"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    for row in rows:
        child = children[row["trial_id"]]
        assert child.data.metrics["latency_ms"] == pytest.approx(float(row["latency_ms"]), abs=1e-3)
        assert child.data.tags["tao_automl.status"] == row["status"]


@pytest.mark.slow   # a fresh MLflow SQLite store takes seconds to create and migrate
def test_a_two_objective_sweep_keeps_its_front_in_pareto_csv_and_mlflow(tmp_path):
    from mlflow.tracking import MlflowClient

    from automl.sweep.pareto import keep_front
    from automl.sweep.tracking import SweepTracker

    settings = settings_from({**_spec(), "results_dir": str(tmp_path)}, {"objective": "map50-latency",
                                                                         "algorithm": "bayesian"})
    settings.automl_dir.mkdir(parents=True)
    table = TrialsTable(settings.automl_dir / "trials.csv")
    for trial_id, status, value, latency in (("fast", "completed", 0.3, 10.0), ("slow", "completed", 0.6, 30.0),
                                             ("worse", "completed", 0.2, 20.0), ("dead", "failed", None, 5.0)):
        record = table.get(trial_id)
        record.status, record.best_value, record.latency_ms, record.latency_runtime = status, value, latency, "onnxruntime"
    tracker = SweepTracker(settings.tracking_uri)
    tracker.start_sweep(str(tmp_path), run_name="sweep", spec={}, space={}, settings=settings.to_json())
    for trial_id in table.records:
        tracker.start_trial(trial_id, {})
    winner, files = keep_front(table, settings, tracker, log=lambda _: None)
    tracker.finish_sweep(best={"trial_id": winner.trial_id, "value": winner.best_value, "epoch": 0}, artifacts=files)

    assert winner.trial_id == "slow"   # the front's most accurate point
    rows = list(csv.DictReader(files[0].open()))
    assert [(r["trial_id"], float(r["val_mAP50"]), float(r["latency_ms"])) for r in rows] == [
        ("fast", 0.3, 10.0), ("slow", 0.6, 30.0)]
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    parent = client.get_run(tracker.parent_id)
    assert parent.data.tags["tao_automl.pareto_front"] == "fast,slow"
    assert [m.value for m in client.get_metric_history(tracker.parent_id, "pareto_latency_ms")] == [10.0, 30.0]
    assert [m.value for m in client.get_metric_history(tracker.parent_id, "pareto_val_mAP50")] == [0.3, 0.6]
    assert "pareto.csv" in [a.path for a in client.list_artifacts(tracker.parent_id)]
    tagged = {trial_id for trial_id, run_id in tracker._children.items()
              if client.get_run(run_id).data.tags.get("tao_automl.pareto_front") == "true"}
    assert tagged == {"fast", "slow"}
