"""The corpus's registry: ``@case(kind)`` adds a case to CASES; the helpers the cases share.

A case is ``build(world, folder) -> (argv, fragment)``: it writes its broken
input under ``folder/in`` (outputs go to ``folder/results``) and returns the
``tao-automl`` arguments and a fragment the error line must contain (the file,
key or value at fault).  Checked-in inputs live in ``tests/bad_inputs/cases/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Tuple

from ..world import World, pickle_payload_checkpoint, write_json, write_yaml

CASES_DIR = Path(__file__).resolve().parents[1] / "cases"
MARKER = "code_ran"        # a pickle payload or YAML tag would create folder/MARKER
Case = Callable[[World, Path], Tuple[List[str], str]]
CASES: Dict[str, Tuple[str, Case]] = {}   # name -> (class of input, build)


def case(kind: str):
    def register(build: Case) -> Case:
        CASES[build.__name__] = (kind, build)
        return build
    return register


def input_file(folder: Path, name: str) -> Path:
    """Where a case writes its broken input ``name`` (the folder is made)."""
    path = folder / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_spec(world: World, folder: Path, **sections) -> Path:
    return write_yaml(world.spec_with(folder, **sections), folder / "in" / "spec.yaml")


def argv(command: str, world: World, folder: Path, *overrides: str, **sections) -> List[str]:
    return [command, "--skill", "rtdetr", "-e", str(write_spec(world, folder, **sections)), *overrides]


def evaluate_on(world: World, folder: Path, json_file, image_dir=None) -> List[str]:
    """``evaluate`` of the good checkpoint on a test split made of ``json_file`` / ``image_dir``."""
    source = {"json_file": str(json_file), "image_dir": str(image_dir or world.data["val_dir"])}
    dataset = {**world.spec["dataset"], "test_data_sources": source}
    return argv("evaluate", world, folder, f"evaluate.checkpoint={world.checkpoint}", dataset=dataset)


def coco_with(world: World, folder: Path, change) -> Path:
    coco = world.coco("val")
    change(coco)
    return write_json(coco, folder / "in" / "broken.json")


def pickled(world: World, folder: Path, name: str = "model.pth") -> Path:
    return pickle_payload_checkpoint(world.checkpoint, folder / "in" / name, folder / MARKER)


def jpeg_bytes(world: World) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(next(world.data["val_dir"].glob("*.png"))).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()
