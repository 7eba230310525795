"""Broken image files and archives."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..world import World, jpeg_header, png_header, tar_with, write_json
from .registry import Case, argv, case, evaluate_on, input_file, jpeg_bytes


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
    return evaluate_on(world, folder, write_json(coco, folder / "in" / "val.json"), images)


@case("images")
def jpegs_zero_bytes(world, folder):
    return _images_replaced(world, folder, lambda _: b"", ".jpg"), "unreadable"


@case("images")
def jpegs_truncated(world, folder):
    jpeg = jpeg_bytes(world)
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
    return argv("inference", world, folder, f"inference.checkpoint={world.checkpoint}", dataset=dataset), "bomb.png"


# -- archives ---------------------------------------------------------------------------------------------
def _archive_case(name: str, entries, fragment: str) -> Case:
    def build(world, folder):
        png = next(world.data["val_dir"].glob("*.png")).read_bytes()
        archive = tar_with(folder / "in" / "images.tar.gz",
                           [("images/ok.png", "file", png)] + [(n, k, c if c is not None else png)
                                                               for n, k, c in entries])
        return evaluate_on(world, folder, world.data["val"], archive), fragment
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
    return evaluate_on(world, folder, world.data["val"], archive), "images.tar.gz"


@case("archive")
def tar_zero_bytes(world, folder):
    archive = input_file(folder, "images.tar.gz")
    archive.write_bytes(b"")
    return evaluate_on(world, folder, world.data["val"], archive), "images.tar.gz"


@case("archive")
def inference_tar_dotdot(world, folder):
    archive = tar_with(folder / "in" / "frames.tar", [("../../escape.png", "file", b"x")])
    dataset = {**world.spec["dataset"], "infer_data_sources": {"image_dir": [str(archive)]}}
    return argv("inference", world, folder, f"inference.checkpoint={world.checkpoint}", dataset=dataset), \
        "escape.png"
