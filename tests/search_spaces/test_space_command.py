"""`tao-automl space` prints the space: a table with reasons, or {"parameters": [...]} as JSON."""
import json

import optuna

from automl import cli
from automl.skills import find_skill
from automl.search_space import search_space_for
from automl.spec import load_spec_dict
from search_spaces.optuna_space import suggest_configuration
from search_spaces.overrides import apply_values

from .nvidia import COSMOS, DINO, NVIDIA_RTDETR


def run(capsys, *argv):
    code = cli.main(["space", "--skill", "rtdetr", *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_table_names_every_parameter_and_why(capsys):
    out = run(capsys)
    assert "train.optim.lr" in out and "log" in out
    assert "Left out:" in out
    assert "train.optim.momentum" in out and "optimizer is SGD" in out


def test_json_items_have_the_documented_keys(capsys):
    items = json.loads(run(capsys, "--json"))["parameters"]
    for item in items:
        assert isinstance(item["name"], str) and isinstance(item["log"], bool) and item["type"]
        assert ("low" in item and "high" in item) or "choices" in item
    by_name = {item["name"]: item for item in items}
    assert by_name["train.optim.lr"]["log"] is True
    assert by_name["model.num_select"]["condition"].startswith("<= min(model.num_queries")


def test_json_on_nvidias_rtdetr_schema(capsys):
    items = {i["name"]: i for i in json.loads(run(capsys, "--schema", str(NVIDIA_RTDETR), "--json"))["parameters"]}
    assert 1e-6 <= items["train.optim.lr"]["low"] < 1e-4 < items["train.optim.lr"]["high"] <= 1e-2
    assert "train.optim.momentum" not in items


def test_json_shows_weights_and_conditions_on_cosmos(capsys):
    items = {i["name"]: i for i in json.loads(run(capsys, "--schema", str(COSMOS), "--json"))["parameters"]}
    assert items["train.optm_decay_type"]["weights"] == [0.1, 0.1, 0.4, 0.4]
    assert items["policy.lora.r"]["condition"] == "^ 2"


def test_spec_and_overrides_change_the_space(capsys):
    items = {i["name"] for i in json.loads(run(capsys, "--json", "train.optim.optimizer=SGD"))["parameters"]}
    assert "train.optim.momentum" in items


def test_bad_schema_file_is_one_line(capsys, tmp_path):
    bad = tmp_path / "train.schema.json"
    bad.write_text('{"properties": {,}}')
    assert cli.main(["space", "--skill", "rtdetr", "--schema", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_a_sampled_configuration_becomes_a_valid_trial_spec():
    spec = load_spec_dict("rtdetr", None, ["automl.add_hyperparameters=[train.optim.optimizer]"])
    space = search_space_for("rtdetr", spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        trial_spec = apply_values(spec, suggest_configuration(trial, space))
        study.tell(trial, 0.0)
        assert trial_spec["model"]["num_select"] <= trial_spec["model"]["num_queries"]
        assert find_skill("rtdetr").validator().problems(trial_spec) == []


def test_another_networks_schema_is_read_without_the_rtdetr_hints(capsys):
    items = {i["name"] for i in json.loads(run(capsys, "--schema", str(DINO), "--json"))["parameters"]}
    assert {"train.optim.momentum", "train.optim.lr_step_size", "dataset.workers"} <= items
