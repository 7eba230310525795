"""Checkpoints carrying a pickle payload (no code may run), and checkpoints that are not checkpoints."""
from __future__ import annotations

from typing import Callable

from ..world import World, pickle_payload_checkpoint
from .registry import MARKER, Case, argv, case, input_file, jpeg_bytes, pickled


# -- checkpoints carrying a pickle payload (no code may run) ----------------------------------------------
@case("pickle")
def pickle_evaluate(world, folder):
    return argv("evaluate", world, folder, f"evaluate.checkpoint={pickled(world, folder)}"), "model.pth"


@case("pickle")
def pickle_inference(world, folder):
    return argv("inference", world, folder, f"inference.checkpoint={pickled(world, folder)}"), "model.pth"


@case("pickle")
def pickle_export(world, folder):
    return argv("export", world, folder, f"export.checkpoint={pickled(world, folder)}",
                f"export.onnx_file={folder / 'results' / 'model.onnx'}"), "model.pth"


@case("pickle")
def pickle_import_weights(world, folder):
    return ["import-weights", "--skill", "rtdetr", "--source", "official", "--input", str(pickled(world, folder)),
            "--output", str(folder / "results" / "imported.pth")], "model.pth"


@case("pickle")
def pickle_pretrained_model_path(world, folder):
    return argv("train", world, folder, f"train.pretrained_model_path={pickled(world, folder)}"), "model.pth"


@case("pickle")
def pickle_resume_checkpoint(world, folder):
    return argv("train", world, folder, f"train.resume_training_checkpoint_path={pickled(world, folder)}"), \
        "model.pth"


@case("pickle")
def pickle_model_latest_resumed_by_rerun(world, folder):
    latest = pickle_payload_checkpoint(world.checkpoint, folder / "results" / "train" / "model_latest.pth",
                                       folder / MARKER)
    return argv("train", world, folder), str(latest.name)


@case("pickle")
def pickle_pretrained_backbone(world, folder):
    return argv("train", world, folder, f"model.pretrained_backbone_path={pickled(world, folder)}"), "model.pth"


@case("pickle")
def pickle_distill_teacher(world, folder):
    return argv("distill", world, folder, f"distill.pretrained_teacher_model_path={pickled(world, folder)}"), \
        "model.pth"


# -- checkpoints that are not checkpoints -----------------------------------------------------------------
def _checkpoint_bytes(name: str, content: Callable[[World], bytes]) -> Case:
    def build(world, folder):
        path = input_file(folder, "model.pth")
        path.write_bytes(content(world))
        return argv("evaluate", world, folder, f"evaluate.checkpoint={path}"), "model.pth"
    build.__name__ = name
    return build


case("checkpoint")(_checkpoint_bytes("checkpoint_zero_bytes", lambda w: b""))
case("checkpoint")(_checkpoint_bytes("checkpoint_truncated", lambda w: w.checkpoint.read_bytes()[:5000]))
case("checkpoint")(_checkpoint_bytes("checkpoint_is_a_jpeg", jpeg_bytes))


@case("checkpoint")
def checkpoint_without_weights(world, folder):
    import torch

    path = input_file(folder, "model.pth")
    torch.save({"note": "no tensors here"}, path)
    return argv("evaluate", world, folder, f"evaluate.checkpoint={path}"), "model.pth"


@case("checkpoint")
def resume_from_weights_only_checkpoint(world, folder):
    # A finished sweep trial's kept model_best.pth has no optimizer state: resuming it is a user mistake.
    return argv("train", world, folder, f"train.resume_training_checkpoint_path={world.checkpoint}"), \
        "weights only"


@case("checkpoint")
def checkpoint_missing(world, folder):
    return argv("evaluate", world, folder, f"evaluate.checkpoint={folder / 'in' / 'gone.pth'}"), "gone.pth"


@case("checkpoint")
def onnx_file_garbage(world, folder):
    path = input_file(folder, "model.onnx")
    path.write_bytes(b"\x08\x07garbage" * 10)
    return argv("evaluate", world, folder, f"evaluate.checkpoint={path}"), "model.onnx"


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
