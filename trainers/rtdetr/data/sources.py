"""Where images come from: a folder, an ``images.tar.gz`` (extracted once), or HDF5 frames.

TAO's data services hand the trainer ``images.tar.gz`` archives (the skill's
``data_sources`` say ``runtime: extracted_folder``), so an ``image_dir`` may be
an archive.  It is extracted once into a cache folder keyed by the archive's
path, size and modification time; every entry is checked first, and an entry
that would land outside the folder (absolute path, ``..``, a symlink or hard
link pointing out, a device file) refuses the whole archive.

HDF5 follows NVIDIA's convention: a COCO ``file_name`` of
``h5://<file stem>:<frame key>`` is the array ``rgb/<frame key>`` of
``<image_dir>/<file stem>.h5``.  Arrays of shape [H, W, 3] are stored in
OpenCV's BGR order (as TAO reads them), [H, W] is grayscale, and a 1-D uint8
array is an encoded image file (JPEG/PNG bytes) that Pillow decodes.

Every image leaves here as an 8-bit RGB ``PIL.Image`` with its EXIF
orientation applied: grayscale, RGBA, palette, CMYK and 16-bit images all
become RGB.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import threading
import zlib
from pathlib import Path, PurePosixPath
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from trainers.errors import UserError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
H5_PREFIX = "h5://"

# Pillow refuses images above ~179 Mpixel as a decompression-bomb guard; detection
# images are far smaller, so that limit stays as Pillow sets it.  Its error is not
# an OSError, so every read catches it with the other unreadable-image errors.
UNREADABLE_IMAGE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class ImageReadError(Exception):
    """An image that cannot be read; ``str()`` names the file and the reason."""


def default_cache_root() -> Path:
    """``$TAO_AUTOML_CACHE`` or ``~/.cache/tao-automl``: where archives are extracted."""
    root = os.environ.get("TAO_AUTOML_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "tao-automl"


def is_archive(path: str) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def resolve_image_dir(image_dir: str, cache_root: Optional[Path] = None) -> Path:
    """A folder to read images from: ``image_dir`` itself, or its extraction when it is an archive."""
    if not image_dir:
        raise UserError("image_dir is empty")
    path = Path(image_dir).expanduser()
    if path.is_dir():
        return path
    if not path.exists():
        raise UserError(f"image_dir {image_dir}: no such folder or archive")
    if not is_archive(str(path)):
        raise UserError(f"image_dir {image_dir}: not a folder nor a .tar.gz/.tgz/.tar archive")
    return extract_archive(path, cache_root or default_cache_root())


def extract_archive(archive: Path, cache_root: Path) -> Path:
    """Extract ``archive`` once under ``cache_root``; later calls return the same folder.

    Extraction goes to a temporary folder that is renamed into place, so two
    trials extracting the same archive at once never see a half-written tree.
    """
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    stem = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    target = cache_root / "extracted" / f"{stem}-{key}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=target.parent))
    try:
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                for member in members:
                    check_archive_member(member, archive)
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12: a second, stdlib check
                    tar.extractall(staging, members=members, filter="data")
                else:  # pragma: no cover - older Pythons; our own checks above still apply
                    tar.extractall(staging, members=members)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise UserError(f"image_dir {archive}: not a readable tar archive ({error})")
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # somebody else won the race only if the target now exists
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def check_archive_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse entries that would be written, or would point, outside the extraction folder."""
    name = member.name
    if not _stays_inside(name):
        raise UserError(f"image_dir {archive}: entry {name!r} points outside the archive folder; refused")
    if member.issym():
        link_target = str(PurePosixPath(name).parent / member.linkname)
        if member.linkname.startswith("/") or not _stays_inside(link_target):
            raise UserError(f"image_dir {archive}: symlink {name!r} -> {member.linkname!r} leads outside "
                            f"the archive folder; refused")
    elif member.islnk():
        if member.linkname.startswith("/") or not _stays_inside(member.linkname):
            raise UserError(f"image_dir {archive}: hard link {name!r} -> {member.linkname!r} leads outside "
                            f"the archive folder; refused")
    elif not (member.isfile() or member.isdir()):
        raise UserError(f"image_dir {archive}: entry {name!r} is a device or fifo; refused")


def _stays_inside(relative: str) -> bool:
    if relative.startswith("/") or "\\" in relative or (len(relative) > 1 and relative[1] == ":"):
        return False
    depth = 0
    for part in PurePosixPath(relative).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in (".", ""):
            depth += 1
    return True


def to_rgb(image: Image.Image) -> Image.Image:
    """EXIF orientation applied, then 8-bit RGB (alpha dropped, 16-bit scaled down)."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float32)
        scale = 257.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 1.0
        image = Image.fromarray(np.clip(array / scale, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow warns when a transparent palette goes straight to RGB
    return image.convert("RGB")


def array_to_rgb(array: np.ndarray, where: str) -> Image.Image:
    """An HDF5 frame as RGB: [H,W,3] BGR (TAO/OpenCV), [H,W,4] BGRA, [H,W,1] or [H,W] gray, or encoded bytes."""
    if array.ndim == 1 and array.dtype == np.uint8:
        try:
            with Image.open(io.BytesIO(array.tobytes())) as encoded:
                encoded.load()
                return to_rgb(encoded)
        except UNREADABLE_IMAGE_ERRORS as error:
            raise ImageReadError(f"{where}: encoded frame is not a readable image ({error})")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(np.nanmax(array)) <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array), mode="L").convert("RGB")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(array[:, :, 2::-1]), mode="RGB")
    raise ImageReadError(f"{where}: frame of shape {tuple(array.shape)} is not an image")


class ImageReader:
    """Reads the images of one ``image_dir`` by COCO ``file_name``.

    Cheap to pickle into DataLoader workers: HDF5 files are opened lazily, once
    per process (h5py handles must not cross a fork).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self._h5_files: Dict[str, object] = {}
        self._h5_pid = os.getpid()
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"root": self.root}

    def __setstate__(self, state):
        self.__init__(state["root"])

    def describe(self, file_name: str) -> str:
        """The path a user should look at for ``file_name`` (for messages)."""
        if file_name.startswith(H5_PREFIX):
            stem, _, key = file_name[len(H5_PREFIX):].partition(":")
            return f"{self._h5_path(stem)}:rgb/{key}"
        return str(self.path_of(file_name))

    def path_of(self, file_name: str) -> Path:
        """``root/file_name``; when absent and the root is one wrapping folder (a tar of ``images/``), inside it."""
        path = self.root / file_name
        if path.exists():
            return path
        children = [c for c in self.root.iterdir() if not c.name.startswith(".")] if self.root.is_dir() else []
        if len(children) == 1 and children[0].is_dir() and (children[0] / file_name).exists():
            return children[0] / file_name
        return path

    def size_of(self, file_name: str) -> Tuple[int, int]:
        """(width, height) after EXIF orientation, reading only the header where possible."""
        if file_name.startswith(H5_PREFIX):
            return self.read(file_name).size
        path = self.path_of(file_name)
        try:
            with Image.open(path) as image:
                width, height = image.size
                orientation = image.getexif().get(0x0112, 1)
        except FileNotFoundError:
            raise ImageReadError(f"{path}: file not found")
        except UNREADABLE_IMAGE_ERRORS as error:
            raise ImageReadError(f"{path}: not a readable image ({error})")
        # Orientations 5..8 swap width and height (90 or 270 degree rotations).
        return (height, width) if orientation in (5, 6, 7, 8) else (width, height)

    def read(self, file_name: str) -> Image.Image:
        """The image as 8-bit RGB with EXIF orientation applied; raises :class:`ImageReadError`."""
        if file_name.startswith(H5_PREFIX):
            return self._read_h5(file_name)
        path = self.path_of(file_name)
        try:
            with Image.open(path) as image:
                image.load()
                return to_rgb(image)
        except FileNotFoundError:
            raise ImageReadError(f"{path}: file not found")
        except UNREADABLE_IMAGE_ERRORS as error:
            raise ImageReadError(f"{path}: not a readable image ({error})")

    def _h5_path(self, stem: str) -> Path:
        return self.root / (stem if stem.endswith(".h5") else f"{stem}.h5")

    def _read_h5(self, file_name: str) -> Image.Image:
        import h5py  # imported here: only HDF5 datasets need it

        stem, separator, key = file_name[len(H5_PREFIX):].partition(":")
        if not separator or not stem or not key:
            raise ImageReadError(f"{file_name}: expected h5://<file stem>:<frame key>")
        path = self._h5_path(stem)
        where = f"{path}:rgb/{key}"
        with self._lock:
            if os.getpid() != self._h5_pid:  # forked: the parent's handles are not ours to use
                self._h5_files, self._h5_pid = {}, os.getpid()
            handle = self._h5_files.get(str(path))
            if handle is None:
                if not path.is_file():
                    raise ImageReadError(f"{path}: file not found")
                try:
                    handle = h5py.File(path, "r")
                except OSError as error:
                    raise ImageReadError(f"{path}: not a readable HDF5 file ({error})")
                self._h5_files[str(path)] = handle
            if "rgb" not in handle:
                raise ImageReadError(f"{path}: no 'rgb' group")
            if key not in handle["rgb"]:
                raise ImageReadError(f"{where}: frame not found")
            try:
                array = np.asarray(handle["rgb"][key][()])
            except (OSError, TypeError, ValueError) as error:
                raise ImageReadError(f"{where}: not readable ({error})")
        return array_to_rgb(array, where)
