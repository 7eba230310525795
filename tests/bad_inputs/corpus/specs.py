"""Broken specs and schemas reaching commands other than validate (tests/spec/broken covers validate)."""
from __future__ import annotations

from .registry import CASES_DIR, MARKER, Case, argv, case, input_file


# -- specs: reaching commands other than validate (tests/spec/broken covers validate) -------------------
@case("spec")
def spec_file_missing(world, folder):
    return ["train", "--skill", "rtdetr", "-e", str(folder / "in" / "nope.yaml")], "nope.yaml"


@case("spec")
def spec_is_a_folder(world, folder):
    (folder / "in" / "spec_dir.yaml").mkdir(parents=True)
    return ["evaluate", "--skill", "rtdetr", "-e", str(folder / "in" / "spec_dir.yaml")], "spec_dir.yaml"


@case("spec")
def spec_zero_bytes(world, folder):
    path = input_file(folder, "empty.yaml")
    path.write_bytes(b"")
    return ["train", "--skill", "rtdetr", "-e", str(path)], "dataset"   # an empty spec is all defaults


@case("spec")
def spec_binary_garbage(world, folder):
    path = input_file(folder, "garbage.yaml")
    path.write_bytes(bytes(range(256)) * 4)
    return ["train", "--skill", "rtdetr", "-e", str(path)], "garbage.yaml"


@case("spec")
def spec_python_tag_runs_no_code(world, folder):
    path = input_file(folder, "tagged.yaml")
    path.write_text(f"results_dir: !!python/object/apply:os.mkdir ['{folder / MARKER}']\n")
    return ["train", "--skill", "rtdetr", "-e", str(path)], "tagged.yaml"


@case("spec")
def spec_recursive_alias(world, folder):
    path = input_file(folder, "recursive.yaml")
    path.write_text("model: &loop\n  backbone: resnet_18\n  inner: *loop\n")
    return ["train", "--skill", "rtdetr", "-e", str(path)], "recursive.yaml"


@case("spec")
def spec_results_dir_is_a_file(world, folder):
    blocker = input_file(folder, "a_file")
    blocker.write_text("not a folder")
    return argv("train", world, folder, f"results_dir={blocker}"), "a_file"


@case("spec")
def sweep_spec_unknown_automl_key(world, folder):
    return argv("sweep", world, folder, automl={"automl_algoritm": "asha"}), "automl_algoritm"


@case("spec")
def sweep_range_override_low_above_high(world, folder):
    automl = {"hyperparameters": ["train.optim.lr"], "range_override": {"train.optim.lr": {"low": 0.1, "high": 0.01}}}
    return argv("sweep", world, folder, automl=automl), "train.optim.lr"


@case("spec")
def sweep_hyperparameter_not_in_schema(world, folder):
    return argv("sweep", world, folder, automl={"hyperparameters": ["train.optim.learning_rate"]}), \
        "train.optim.learning_rate"


# -- schemas: tao-automl space --schema (checked-in files in cases/) ---------------------------------------
def _schema(name: str) -> Case:
    def build(world, folder):
        return ["space", "--skill", "rtdetr", "--schema", str(CASES_DIR / name)], name
    build.__name__ = "schema_" + name.split(".")[0]
    return build


for _name in sorted(p.name for p in CASES_DIR.glob("*.schema.json")):
    case("schema")(_schema(_name))


@case("schema")
def schema_missing(world, folder):
    return ["space", "--skill", "rtdetr", "--schema", str(folder / "in" / "none.schema.json")], "none.schema.json"


@case("schema")
def schema_zero_bytes(world, folder):
    path = input_file(folder, "zero.schema.json")
    path.write_bytes(b"")
    return ["space", "--skill", "rtdetr", "--schema", str(path)], "zero.schema.json"


@case("schema")
def schema_with_nothing_to_search_for_a_sweep(world, folder):
    return argv("sweep", world, folder, "--schema", str(CASES_DIR / "nothing_searchable.json")), "search space is empty"


@case("schema")
def schema_for_a_sweep(world, folder):
    return argv("sweep", world, folder, "--schema", str(CASES_DIR / "not_an_object.schema.json")), \
        "not_an_object.schema.json"
