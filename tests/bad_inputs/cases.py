"""The bad-input corpus: each case breaks one input of a real command and says what the one error line must name.

A case is ``build(world, folder) -> (argv, fragment)``: it writes its broken
input under ``folder/in`` (outputs go to ``folder/results``) and returns the
``tao-automl`` arguments and a fragment the error line must contain (the file,
key or value at fault).  Checked-in inputs live in ``cases/``.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from .world import (World, jpeg_header, pickle_payload_checkpoint, png_header, tar_with, write_json,
                    write_yaml)

CASES_DIR = Path(__file__).resolve().parent / "cases"
MARKER = "code_ran"        # a pickle payload or YAML tag would create folder/MARKER
Case = Callable[[World, Path], Tuple[List[str], str]]
CASES: Dict[str, Tuple[str, Case]] = {}   # name -> (class of input, build)


def case(kind: str):
    def register(build: Case) -> Case:
        CASES[build.__name__] = (kind, build)
        return build
    return register


def _spec(world: World, folder: Path, **sections) -> Path:
    return write_yaml(world.spec_with(folder, **sections), folder / "in" / "spec.yaml")


def _run(command: str, world: World, folder: Path, *overrides: str, **sections) -> List[str]:
    return [command, "--skill", "rtdetr", "-e", str(_spec(world, folder, **sections)), *overrides]


def _evaluate_on(world: World, folder: Path, json_file, image_dir=None) -> List[str]:
    """``evaluate`` of the good checkpoint on a test split made of ``json_file`` / ``image_dir``."""
    source = {"json_file": str(json_file), "image_dir": str(image_dir or world.data["val_dir"])}
    dataset = {**world.spec["dataset"], "test_data_sources": source}
    return _run("evaluate", world, folder, f"evaluate.checkpoint={world.checkpoint}", dataset=dataset)


def _coco_with(world: World, folder: Path, change) -> Path:
    coco = world.coco("val")
    change(coco)
    return write_json(coco, folder / "in" / "broken.json")


def _pickled(world: World, folder: Path, name: str = "model.pth") -> Path:
    return pickle_payload_checkpoint(world.checkpoint, folder / "in" / name, folder / MARKER)


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
    path = folder / "in" / "empty.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    return ["train", "--skill", "rtdetr", "-e", str(path)], "dataset"   # an empty spec is all defaults


@case("spec")
def spec_binary_garbage(world, folder):
    path = folder / "in" / "garbage.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(256)) * 4)
    return ["train", "--skill", "rtdetr", "-e", str(path)], "garbage.yaml"


@case("spec")
def spec_python_tag_runs_no_code(world, folder):
    path = folder / "in" / "tagged.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(f"results_dir: !!python/object/apply:os.mkdir ['{folder / MARKER}']\n")
    return ["train", "--skill", "rtdetr", "-e", str(path)], "tagged.yaml"


@case("spec")
def spec_recursive_alias(world, folder):
    path = folder / "in" / "recursive.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("model: &loop\n  backbone: resnet_18\n  inner: *loop\n")
    return ["train", "--skill", "rtdetr", "-e", str(path)], "recursive.yaml"


@case("spec")
def spec_results_dir_is_a_file(world, folder):
    blocker = folder / "in" / "a_file"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    return _run("train", world, folder, f"results_dir={blocker}"), "a_file"


@case("spec")
def sweep_spec_unknown_automl_key(world, folder):
    return _run("sweep", world, folder, automl={"automl_algoritm": "asha"}), "automl_algoritm"


@case("spec")
def sweep_range_override_low_above_high(world, folder):
    automl = {"hyperparameters": ["train.optim.lr"], "range_override": {"train.optim.lr": {"low": 0.1, "high": 0.01}}}
    return _run("sweep", world, folder, automl=automl), "train.optim.lr"


@case("spec")
def sweep_hyperparameter_not_in_schema(world, folder):
    return _run("sweep", world, folder, automl={"hyperparameters": ["train.optim.learning_rate"]}), \
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
    path = folder / "in" / "zero.schema.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    return ["space", "--skill", "rtdetr", "--schema", str(path)], "zero.schema.json"


@case("schema")
def schema_with_nothing_to_search_for_a_sweep(world, folder):
    return _run("sweep", world, folder, "--schema", str(CASES_DIR / "nothing_searchable.json")), "search space is empty"


@case("schema")
def schema_for_a_sweep(world, folder):
    return _run("sweep", world, folder, "--schema", str(CASES_DIR / "not_an_object.schema.json")), \
        "not_an_object.schema.json"


# -- annotation files (evaluate reads the test split) ---------------------------------------------------
@case("annotations")
def json_not_json(world, folder):
    path = folder / "in" / "broken.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"images": [')
    return _evaluate_on(world, folder, path), "broken.json"


@case("annotations")
def json_zero_bytes(world, folder):
    path = folder / "in" / "broken.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    return _evaluate_on(world, folder, path), "broken.json"


@case("annotations")
def json_missing(world, folder):
    return _evaluate_on(world, folder, folder / "in" / "absent.json"), "absent.json"


@case("annotations")
def json_a_list(world, folder):
    return _evaluate_on(world, folder, write_json([1, 2], folder / "in" / "broken.json")), "broken.json"


@case("annotations")
def json_annotations_not_a_list(world, folder):
    return _evaluate_on(world, folder, _coco_with(world, folder, lambda c: c.update(annotations={"a": 1}))), \
        "annotations"


@case("annotations")
def json_duplicate_image_ids(world, folder):
    def change(coco):
        coco["images"][1]["id"] = coco["images"][0]["id"]
    return _evaluate_on(world, folder, _coco_with(world, folder, change)), "appears twice"


def _every_box(change):
    def apply(coco):
        for annotation in coco["annotations"]:
            change(annotation)
    return apply


@case("annotations")
def boxes_all_nan(world, folder):
    path = folder / "in" / "broken.json"
    coco = world.coco("val")
    for annotation in coco["annotations"]:
        annotation["bbox"] = [math.nan, 1.0, 5.0, 5.0]
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(coco))          # json.dumps writes NaN, which Python's json reads back
    return _evaluate_on(world, folder, path), "broken.json"


@case("annotations")
def boxes_all_negative(world, folder):
    change = _every_box(lambda a: a.update(bbox=[a["bbox"][0], a["bbox"][1], -a["bbox"][2], -4.0]))
    return _evaluate_on(world, folder, _coco_with(world, folder, change)), "broken.json"


@case("annotations")
def boxes_all_outside_the_image(world, folder):
    change = _every_box(lambda a: a.update(bbox=[500.0, 500.0, 10.0, 10.0]))
    return _evaluate_on(world, folder, _coco_with(world, folder, change)), "broken.json"


@case("annotations")
def annotations_all_for_unknown_images(world, folder):
    return _evaluate_on(world, folder, _coco_with(world, folder, _every_box(lambda a: a.update(image_id=999)))), \
        "broken.json"


@case("annotations")
def annotations_all_of_unknown_categories(world, folder):
    return _evaluate_on(world, folder, _coco_with(world, folder, _every_box(lambda a: a.update(category_id="cat")))), \
        "broken.json"


@case("annotations")
def split_without_images(world, folder):
    return _evaluate_on(world, folder, _coco_with(world, folder, lambda c: c.update(images=[], annotations=[]))), \
        "broken.json"


@case("annotations")
def train_split_empty(world, folder):
    path = _coco_with(world, folder, lambda c: c.update(images=[], annotations=[]))
    dataset = {**world.spec["dataset"], "train_data_sources": [{"json_file": str(path),
                                                                "image_dir": str(world.data["train_dir"])}]}
    return _run("train", world, folder, dataset=dataset), "broken.json"


@case("annotations")
def num_classes_too_small(world, folder):
    return _run("train", world, folder, "dataset.num_classes=1"), "num_classes"


@case("annotations")
def images_all_missing(world, folder):
    empty = folder / "in" / "no_images"
    empty.mkdir(parents=True)
    return _evaluate_on(world, folder, world.data["val"], empty), "missing"


@case("annotations")
def image_dir_missing(world, folder):
    return _evaluate_on(world, folder, world.data["val"], folder / "in" / "nowhere"), "nowhere"


# -- image files ------------------------------------------------------------------------------------------
def _images_replaced(world: World, folder: Path, content: Callable[[bytes], bytes], suffix: str = ".png"):
    """The val split with every image file replaced by ``content(original bytes)`` (same file names)."""
    images = folder / "in" / "images"
    images.mkdir(parents=True)
    coco = world.coco("val")
    for entry in coco["images"]:
        original = (world.data["val_dir"] / entry["file_name"]).read_bytes()
        entry["file_name"] = Path(entry["file_name"]).stem + suffix
        (images / entry["file_name"]).write_bytes(content(original))
    return _evaluate_on(world, folder, write_json(coco, folder / "in" / "val.json"), images)


def _jpeg_bytes(world: World) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(next(world.data["val_dir"].glob("*.png"))).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


@case("images")
def jpegs_zero_bytes(world, folder):
    return _images_replaced(world, folder, lambda _: b"", ".jpg"), "unreadable"


@case("images")
def jpegs_truncated(world, folder):
    jpeg = _jpeg_bytes(world)
    return _images_replaced(world, folder, lambda _: jpeg[: len(jpeg) // 3], ".jpg"), "unreadable"


@case("images")
def jpegs_header_only(world, folder):
    return _images_replaced(world, folder, lambda _: jpeg_header(64, 64), ".jpg"), "unreadable"


@case("images")
def png_decompression_bomb(world, folder):
    return _images_replaced(world, folder, lambda _: png_header(100_000, 100_000)), "unreadable"


@case("images")
def jpeg_decompression_bomb(world, folder):
    return _images_replaced(world, folder, lambda _: jpeg_header(60_000, 60_000), ".jpg"), "unreadable"


@case("images")
def text_file_named_png(world, folder):
    return _images_replaced(world, folder, lambda _: b"hello, not an image\n"), "unreadable"


@case("images")
def inference_on_a_bomb(world, folder):
    images = folder / "in" / "images"
    images.mkdir(parents=True)
    (images / "bomb.png").write_bytes(png_header(100_000, 100_000))
    dataset = {**world.spec["dataset"], "infer_data_sources": {"image_dir": [str(images)]}}
    return _run("inference", world, folder, f"inference.checkpoint={world.checkpoint}", dataset=dataset), "bomb.png"


# -- archives ---------------------------------------------------------------------------------------------
def _archive_case(name: str, entries, fragment: str) -> Case:
    def build(world, folder):
        png = next(world.data["val_dir"].glob("*.png")).read_bytes()
        archive = tar_with(folder / "in" / "images.tar.gz",
                           [("images/ok.png", "file", png)] + [(n, k, c if c is not None else png)
                                                               for n, k, c in entries])
        return _evaluate_on(world, folder, world.data["val"], archive), fragment
    build.__name__ = name
    return build


for _name, _entries, _fragment in [
        ("tar_dotdot_entry", [("images/../../escape.png", "file", None)], "escape.png"),
        ("tar_absolute_entry", [("/tmp/tao_automl_escape.png", "file", None)], "tao_automl_escape.png"),
        ("tar_symlink_out", [("images/link.png", "symlink", "/etc/passwd")], "link.png"),
        ("tar_symlink_dotdot", [("images/link.png", "symlink", "../../../etc/passwd")], "link.png"),
        ("tar_hardlink_out", [("images/hard.png", "hardlink", "/etc/passwd")], "hard.png"),
        ("tar_hardlink_dotdot", [("images/hard.png", "hardlink", "../../outside.png")], "hard.png")]:
    case("archive")(_archive_case(_name, _entries, _fragment))


@case("archive")
def tar_truncated(world, folder):
    good = tar_with(folder / "in" / "good.tar.gz", [("images/a.png", "file", b"x" * 4096)])
    archive = folder / "in" / "images.tar.gz"
    archive.write_bytes(good.read_bytes()[:40])
    good.unlink()
    return _evaluate_on(world, folder, world.data["val"], archive), "images.tar.gz"


@case("archive")
def tar_zero_bytes(world, folder):
    archive = folder / "in" / "images.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"")
    return _evaluate_on(world, folder, world.data["val"], archive), "images.tar.gz"


@case("archive")
def inference_tar_dotdot(world, folder):
    archive = tar_with(folder / "in" / "frames.tar", [("../../escape.png", "file", b"x")])
    dataset = {**world.spec["dataset"], "infer_data_sources": {"image_dir": [str(archive)]}}
    return _run("inference", world, folder, f"inference.checkpoint={world.checkpoint}", dataset=dataset), \
        "escape.png"


# -- checkpoints carrying a pickle payload (no code may run) ----------------------------------------------
@case("pickle")
def pickle_evaluate(world, folder):
    return _run("evaluate", world, folder, f"evaluate.checkpoint={_pickled(world, folder)}"), "model.pth"


@case("pickle")
def pickle_inference(world, folder):
    return _run("inference", world, folder, f"inference.checkpoint={_pickled(world, folder)}"), "model.pth"


@case("pickle")
def pickle_export(world, folder):
    return _run("export", world, folder, f"export.checkpoint={_pickled(world, folder)}",
                f"export.onnx_file={folder / 'results' / 'model.onnx'}"), "model.pth"


@case("pickle")
def pickle_import_weights(world, folder):
    return ["import-weights", "--skill", "rtdetr", "--source", "official", "--input", str(_pickled(world, folder)),
            "--output", str(folder / "results" / "imported.pth")], "model.pth"


@case("pickle")
def pickle_pretrained_model_path(world, folder):
    return _run("train", world, folder, f"train.pretrained_model_path={_pickled(world, folder)}"), "model.pth"


@case("pickle")
def pickle_resume_checkpoint(world, folder):
    return _run("train", world, folder, f"train.resume_training_checkpoint_path={_pickled(world, folder)}"), \
        "model.pth"


@case("pickle")
def pickle_model_latest_resumed_by_rerun(world, folder):
    latest = pickle_payload_checkpoint(world.checkpoint, folder / "results" / "train" / "model_latest.pth",
                                       folder / MARKER)
    return _run("train", world, folder), str(latest.name)


@case("pickle")
def pickle_pretrained_backbone(world, folder):
    return _run("train", world, folder, f"model.pretrained_backbone_path={_pickled(world, folder)}"), "model.pth"


@case("pickle")
def pickle_distill_teacher(world, folder):
    return _run("distill", world, folder, f"distill.pretrained_teacher_model_path={_pickled(world, folder)}"), \
        "model.pth"


# -- checkpoints that are not checkpoints -----------------------------------------------------------------
def _checkpoint_bytes(name: str, content: Callable[[World], bytes]) -> Case:
    def build(world, folder):
        path = folder / "in" / "model.pth"
        path.parent.mkdir(parents=True)
        path.write_bytes(content(world))
        return _run("evaluate", world, folder, f"evaluate.checkpoint={path}"), "model.pth"
    build.__name__ = name
    return build


case("checkpoint")(_checkpoint_bytes("checkpoint_zero_bytes", lambda w: b""))
case("checkpoint")(_checkpoint_bytes("checkpoint_truncated", lambda w: w.checkpoint.read_bytes()[:5000]))
case("checkpoint")(_checkpoint_bytes("checkpoint_is_a_jpeg", _jpeg_bytes))


@case("checkpoint")
def checkpoint_without_weights(world, folder):
    import torch

    path = folder / "in" / "model.pth"
    path.parent.mkdir(parents=True)
    torch.save({"note": "no tensors here"}, path)
    return _run("evaluate", world, folder, f"evaluate.checkpoint={path}"), "model.pth"


@case("checkpoint")
def resume_from_weights_only_checkpoint(world, folder):
    # A finished sweep trial's kept model_best.pth has no optimizer state: resuming it is a user mistake.
    return _run("train", world, folder, f"train.resume_training_checkpoint_path={world.checkpoint}"), \
        "weights only"


@case("checkpoint")
def checkpoint_missing(world, folder):
    return _run("evaluate", world, folder, f"evaluate.checkpoint={folder / 'in' / 'gone.pth'}"), "gone.pth"


@case("checkpoint")
def onnx_file_garbage(world, folder):
    path = folder / "in" / "model.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x08\x07garbage" * 10)
    return _run("evaluate", world, folder, f"evaluate.checkpoint={path}"), "model.onnx"


@case("checkpoint")
def import_weights_input_missing(world, folder):
    return ["import-weights", "--skill", "rtdetr", "--source", "official", "--input", str(folder / "in" / "x.pth"),
            "--output", str(folder / "results" / "out.pth")], "x.pth"


@case("checkpoint")
def import_weights_hf_folder_with_bad_config(world, folder):
    hf = folder / "in" / "hf_model"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text("{not json")
    (hf / "model.safetensors").write_bytes(b"\0" * 16)
    return ["import-weights", "--skill", "rtdetr", "--source", "hf", "--input", str(hf),
            "--output", str(folder / "results" / "out.pth")], "hf_model"


# -- sweep settings and flags (refused before Ray starts) -------------------------------------------------
def _sweep_flags(name: str, flags: List[str], fragment: str, **sections) -> Case:
    def build(world, folder):
        return _run("sweep", world, folder, *flags, **sections), fragment
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
    return _run("sweep", world, folder, automl={"automl_algorithm": "annealing"}), "annealing"


@case("sweep")
def sweep_already_in_results(world, folder):
    (folder / "results" / "automl").mkdir(parents=True)
    (folder / "results" / "automl" / "trials.csv").write_text("trial_id,status\n")
    return _run("sweep", world, folder), "--resume"


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
    return _run("sweep", world, folder, automl={"automl_latency_budget_ms": -5}), "automl_latency_budget_ms"


@case("sweep")
def sweep_unknown_objective_in_spec(world, folder):
    return _run("sweep", world, folder, automl={"automl_objective": "fastest"}), "fastest"
