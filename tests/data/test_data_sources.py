"""Reading images: folders, images.tar.gz archives, HDF5 frames, odd modes, EXIF, broken files."""
from __future__ import annotations

import io
import os
import tarfile

import h5py
import numpy as np
import pytest
from PIL import Image

from trainers.errors import UserError
from trainers.rtdetr.data.sources import ImageReadError, ImageReader, resolve_image_dir

from .helpers import write_image


def make_tar(path, entries):
    """entries: (name, bytes) for files, (name, '->target') for symlinks, (name, '=>target') for hard links."""
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in entries:
            info = tarfile.TarInfo(name)
            if isinstance(payload, str) and payload.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, payload[2:]
                tar.addfile(info)
            elif isinstance(payload, str) and payload.startswith("=>"):
                info.type, info.linkname = tarfile.LNKTYPE, payload[2:]
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return path


def png_bytes(size=(8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_folder_is_used_as_it_is(tmp_path):
    assert resolve_image_dir(str(tmp_path)) == tmp_path


def test_an_archive_is_extracted_once_into_the_cache(tmp_path):
    archive = make_tar(tmp_path / "images.tar.gz", [("a.png", png_bytes()), ("sub/b.png", png_bytes())])
    cache = tmp_path / "cache"
    first = resolve_image_dir(str(archive), cache)
    assert (first / "a.png").is_file() and (first / "sub" / "b.png").is_file()
    marker = first / "a.png"
    os.utime(marker, (1, 1))
    second = resolve_image_dir(str(archive), cache)
    assert second == first and marker.stat().st_mtime == 1  # not extracted again
    assert ImageReader(first).read("sub/b.png").size == (8, 6)


def test_an_archive_with_one_wrapping_folder_still_finds_images_by_file_name(tmp_path):
    archive = make_tar(tmp_path / "images.tgz", [("images/a.png", png_bytes())])
    reader = ImageReader(resolve_image_dir(str(archive), tmp_path / "cache"))
    assert reader.read("a.png").size == (8, 6)


@pytest.mark.parametrize("entries, words", [
    ([("../evil.png", png_bytes())], "outside"),
    ([("/abs/evil.png", png_bytes())], "outside"),
    ([("ok/../../evil.png", png_bytes())], "outside"),
    ([("link.png", "->../../etc/passwd")], "symlink"),
    ([("link.png", "->/etc/passwd")], "symlink"),
    ([("hard.png", "=>../outside.png")], "hard link"),
])
def test_archive_entries_leading_outside_refuse_the_whole_archive(tmp_path, entries, words):
    archive = make_tar(tmp_path / "bad.tar.gz", [("fine.png", png_bytes())] + entries)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=words) as error:
        resolve_image_dir(str(archive), cache)
    assert "bad.tar.gz" in str(error.value)
    assert not (tmp_path / "evil.png").exists()
    extracted = cache / "extracted"
    assert not extracted.exists() or not any(p.is_dir() for p in extracted.iterdir())


def test_a_symlink_inside_the_archive_is_allowed(tmp_path):
    archive = make_tar(tmp_path / "ok.tar.gz", [("a.png", png_bytes()), ("alias.png", "->a.png")])
    reader = ImageReader(resolve_image_dir(str(archive), tmp_path / "cache"))
    assert reader.read("alias.png").size == (8, 6)


def test_not_an_archive_and_missing_folder_are_user_errors(tmp_path):
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tar at all")
    with pytest.raises(UserError, match="not a readable tar"):
        resolve_image_dir(str(tmp_path / "broken.tar.gz"), tmp_path / "cache")
    with pytest.raises(UserError, match="no such folder"):
        resolve_image_dir(str(tmp_path / "nowhere"))


def test_hdf5_frames_are_read_by_stem_and_key_in_the_rgb_group(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB ...
    encoded = io.BytesIO()
    Image.fromarray(rgb).save(encoded, format="PNG")
    with h5py.File(tmp_path / "drive_01.h5", "w") as f:
        f["rgb/frame_000"] = rgb[:, :, ::-1]  # ... stored BGR, as OpenCV (and TAO) write frames
        f["rgb/gray"] = np.full((5, 7), 90, np.uint8)
        f["rgb/png"] = np.frombuffer(encoded.getvalue(), np.uint8)
    reader = ImageReader(tmp_path)
    frame = reader.read("h5://drive_01:frame_000")
    assert frame.mode == "RGB" and frame.size == (8, 6) and frame.getpixel((0, 0)) == (200, 0, 0)
    assert reader.read("h5://drive_01:gray").getpixel((0, 0)) == (90, 90, 90)
    assert reader.read("h5://drive_01:png").getpixel((3, 3)) == (200, 0, 0)
    with pytest.raises(ImageReadError, match="frame not found"):
        reader.read("h5://drive_01:frame_999")
    with pytest.raises(ImageReadError, match="file not found"):
        reader.read("h5://missing:frame_000")


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "CMYK", "I;16"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    path = tmp_path / f"image.{fmt.lower()}"
    if mode == "I;16":
        Image.fromarray(np.full((6, 8), 65535, np.uint16)).save(path, format=fmt)
    else:
        write_image(path, size=(8, 6), mode=mode, fmt=fmt)
    image = ImageReader(tmp_path).read(path.name)
    assert image.mode == "RGB" and image.size == (8, 6)
    if mode == "I;16":
        assert image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied_to_pixels_and_size(tmp_path):
    # A 40x20 image whose left half is white; EXIF orientation 6 = "rotate 90 degrees clockwise to display".
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(array).save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    reader = ImageReader(tmp_path)
    image = reader.read("rotated.jpg")
    assert image.size == (20, 40) and reader.size_of("rotated.jpg") == (20, 40)
    assert image.getpixel((10, 5))[0] > 200 and image.getpixel((10, 35))[0] < 50  # white moved to the top


def test_zero_byte_corrupt_and_missing_files_raise_a_read_error_naming_the_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    write_image(tmp_path / "whole.jpg", size=(64, 64), fmt="JPEG")
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    reader = ImageReader(tmp_path)
    for name in ("empty.jpg", "truncated.jpg", "missing.jpg"):
        with pytest.raises(ImageReadError, match=name):
            reader.read(name)
