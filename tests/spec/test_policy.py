"""automl_policy routing: on/auto -> sweep when AutoML is enabled and runnable; off -> plain training."""
import shutil
from pathlib import Path

import pytest
import yaml

from automl.policy import Route, decide_route
from automl.skills import find_skill
from trainers.errors import UserError

NVIDIA_RTDETR = Path(__file__).resolve().parents[1] / "search_spaces" / "tao-skill-bank" / "tao-train-rtdetr"


@pytest.fixture
def skill_copy(tmp_path):
    """A writable copy of our rtdetr skill folder."""
    root = tmp_path / "rtdetr"
    shutil.copytree(find_skill("rtdetr").root, root)
    return root


@pytest.mark.parametrize("policy", ["on", "auto"])
def test_on_and_auto_sweep_when_enabled_and_packaged(policy):
    assert decide_route("rtdetr", policy) == Route("sweep")
    assert decide_route(str(NVIDIA_RTDETR), policy) == Route("sweep")


def test_off_is_always_plain_training():
    assert decide_route("rtdetr", "off") == Route("train")


def test_missing_train_schema_or_template_trains_with_a_notice(skill_copy):
    (skill_copy / "references" / "spec_template_train.yaml").unlink()
    route = decide_route(str(skill_copy), "on")
    assert route.kind == "train"
    assert "AutoML is enabled for skill rtdetr but not runnable" in route.notice
    assert "spec_template_train.yaml is not packaged" in route.notice
    (skill_copy / "schemas" / "train.schema.json").write_text("{not json")
    assert "cannot be read" in decide_route(str(skill_copy), "on").notice


def test_a_skill_without_automl_trains_without_a_notice(skill_copy):
    info_path = skill_copy / "references" / "skill_info.yaml"
    info = yaml.safe_load(info_path.read_text())
    info["automl_enabled"] = False
    info_path.write_text(yaml.safe_dump(info))
    manifest = skill_copy / "schemas" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"automl_enabled": true', '"automl_enabled": false'))
    assert decide_route(str(skill_copy), "on") == Route("train")


def test_an_unknown_policy_is_a_user_error():
    with pytest.raises(UserError, match="--automl-policy maybe: expected one of on, auto, off"):
        decide_route("rtdetr", "maybe")
