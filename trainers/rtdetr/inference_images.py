"""The images ``tao-automl inference`` runs on: folders, ``images.tar.gz`` archives and HDF5 frames.

Each entry of ``dataset.infer_data_sources.image_dir`` may be

- a folder: every image file under it (sorted), plus every frame of every
  ``*.h5`` file under it;
- an archive (``.tar.gz``/``.tgz``/``.tar``): extracted once (with the path
  checks of :mod:`.data.sources`) and read as a folder;
- one ``.h5`` file: its frames.

An HDF5 frame is the array ``rgb/<key>`` (NVIDIA's convention, read by
:class:`~trainers.rtdetr.data.sources.ImageReader`); it is named
``h5://<file stem>:<key>`` like in COCO files, and its annotated image is
written as ``<file stem>_<key>.png``.

The data package's ``ImageFolderDataset`` lists image files only; this one adds
the HDF5 frames and gives every image the name its outputs are written under.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from trainers.errors import UserError

from .data.report import LoadReport
from .data.sources import (H5_PREFIX, IMAGE_EXTENSIONS, ImageReadError, ImageReader, is_archive,
                           resolve_image_dir)
from .data.transforms import Compose

H5_SUFFIX = ".h5"


@dataclass(frozen=True)
class InferenceImage:
    """One image to run on.

    ``file_name``: the name its reader reads (a path relative to the reader's
    root, or ``h5://<stem>:<key>``), also the ``file_name`` of results.json;
    ``output_name``: the relative path of its annotated image (and, with a
    ``.txt`` suffix, of its label file); ``source``: index into the readers.
    """

    source: int
    file_name: str
    output_name: str


class InferenceImages(Dataset):
    """Items ``(image [3,H,W] float32 in 0..1, target)`` for inference.

    ``target`` holds empty ``boxes``/``labels``, ``image_id`` (the item index),
    ``orig_size`` int64 (w, h), ``norm_size`` float32 (w, h) (what normalised
    coordinate 1.0 spans in original pixels), ``size`` (w, h) after resizing,
    ``file_name`` and ``output_name``.
    """

    def __init__(self, image_dirs: Sequence[str], transforms: Compose, per_source_folders: bool = False,
                 cache_root: Optional[Path] = None):
        self.transforms = transforms
        image_dirs = [str(d) for d in image_dirs if d]
        if not image_dirs:
            raise UserError("dataset.infer_data_sources.image_dir: no folder given")
        self.readers: List[ImageReader] = []
        self.report = LoadReport("infer")
        listed: List[Tuple[int, str, str]] = []
        for source, image_dir in enumerate(image_dirs):
            root, names = _list_source(image_dir, cache_root, self.report)
            if not names:
                raise UserError(f"image_dir {image_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) "
                                f"and no {H5_SUFFIX} frames")
            self.readers.append(ImageReader(root))
            # TAO's is_internal: each source's outputs go to a folder named after it.
            prefix = f"{_source_label(image_dir)}/" if per_source_folders else ""
            listed += [(source, name, prefix + _output_name(name)) for name in names]
        readable = self._drop_unreadable(listed)
        outputs = _unique_names([output for _, _, output in readable])
        self.images = [InferenceImage(source, name, output) for (source, name, _), output in zip(readable, outputs)]
        self.report.images = len(self.images)
        if not self.images:
            raise UserError(f"infer: no readable images in {', '.join(image_dirs)} ({self.report.summary()})")

    def _drop_unreadable(self, listed: List[Tuple[int, str, str]]) -> List[Tuple[int, str, str]]:
        """Check every image header now, so a broken file is reported at the start and skipped, not fatal mid-run.

        HDF5 frames were checked by shape when listed (reading every frame twice would double the I/O).
        """
        def error_of(entry: Tuple[int, str, str]) -> Optional[str]:
            source, name, _ = entry
            if name.startswith(H5_PREFIX):
                return None
            try:
                self.readers[source].size_of(name)
                return None
            except ImageReadError as error:
                return str(error)

        with ThreadPoolExecutor(max_workers=8) as pool:
            errors = list(pool.map(error_of, listed))
        kept = []
        for entry, error in zip(listed, errors):
            if error is None:
                kept.append(entry)
            else:
                reason = "missing" if error.endswith("file not found") else "unreadable"
                self.report.skip(reason, self.readers[entry[0]].describe(entry[1]), noun="image")
        return kept

    def __len__(self) -> int:
        return len(self.images)

    def read_original(self, index: int):
        """The image as read from its source (8-bit RGB PIL image, EXIF orientation applied)."""
        entry = self.images[index]
        try:
            return self.readers[entry.source].read(entry.file_name)
        except ImageReadError as error:
            raise UserError(str(error)) from None

    def __getitem__(self, index: int):
        entry = self.images[index]
        image = self.read_original(index)
        size = torch.tensor(image.size, dtype=torch.int64)
        target = {
            "boxes": torch.zeros((0, 4), dtype=torch.float32),
            "labels": torch.zeros((0,), dtype=torch.int64),
            "image_id": index,
            "orig_size": size,
            "norm_size": size.float(),
            "file_name": entry.file_name,
            "output_name": entry.output_name,
        }
        return self.transforms(image, target)


def _list_source(image_dir: str, cache_root: Optional[Path], report: LoadReport) -> Tuple[Path, List[str]]:
    """(reader root, file names under it): image files first, then HDF5 frames, each sorted."""
    path = Path(image_dir).expanduser()
    if path.is_file() and path.suffix.lower() == H5_SUFFIX:
        return path.parent, _h5_frame_names(path, path.parent, report)
    if not path.exists():
        raise UserError(f"image_dir {image_dir}: no such folder, archive or {H5_SUFFIX} file")
    if path.is_file() and not is_archive(str(path)):
        raise UserError(f"image_dir {image_dir}: not a folder, a .tar.gz/.tgz/.tar archive nor a {H5_SUFFIX} file")
    root = resolve_image_dir(str(path), cache_root)
    visible = [p for p in root.rglob("*")
               if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    images = sorted(p.relative_to(root).as_posix() for p in visible if p.suffix.lower() in IMAGE_EXTENSIONS)
    frames: List[str] = []
    for h5_file in sorted(p for p in visible if p.suffix.lower() == H5_SUFFIX):
        frames += _h5_frame_names(h5_file, root, report)
    return root, images + frames


def _h5_frame_names(h5_file: Path, root: Path, report: LoadReport) -> List[str]:
    """``h5://<stem relative to root>:<key>`` for every image-shaped array of the file's ``rgb`` group, by key.

    Arrays of another shape are skipped and counted in ``report``.
    """
    import h5py  # only HDF5 inputs need it

    stem = h5_file.relative_to(root).with_suffix("").as_posix()
    names = []
    try:
        with h5py.File(h5_file, "r") as handle:
            group = handle.get("rgb")
            if not isinstance(group, h5py.Group):
                raise UserError(f"{h5_file}: no 'rgb' group of frames")
            for key in sorted(group):
                item = group[key]
                if isinstance(item, h5py.Dataset) and _is_frame_shape(item.shape, item.dtype):
                    names.append(f"{H5_PREFIX}{stem}:{key}")
                else:
                    report.skip("not image-shaped", f"{h5_file}:rgb/{key}", noun="frame")
    except OSError as error:
        raise UserError(f"{h5_file}: not a readable HDF5 file ({error})") from None
    return names


def _is_frame_shape(shape: Tuple[int, ...], dtype) -> bool:
    """What :func:`~trainers.rtdetr.data.sources.array_to_rgb` reads: [H,W], [H,W,1|3|4], or encoded bytes."""
    if len(shape) == 1:
        return dtype == np.uint8 and shape[0] > 0
    if len(shape) == 2:
        return min(shape) > 0
    return len(shape) == 3 and min(shape[:2]) > 0 and shape[2] in (1, 3, 4)


def _output_name(file_name: str) -> str:
    """Where an image's outputs go, relative to the output folders.

    Image files keep their relative path; a frame ``h5://a/b:k`` becomes
    ``a/b_k.png`` (frames are arrays, so they are written losslessly).
    """
    if file_name.startswith(H5_PREFIX):
        stem, _, key = file_name[len(H5_PREFIX):].partition(":")
        return f"{stem}_{key.replace('/', '_')}.png"
    return file_name


def _source_label(image_dir: str) -> str:
    """A folder name for one source: its folder name, or the archive / .h5 name without its suffix."""
    name = Path(image_dir.rstrip("/")).name or "images"
    for suffix in (".tar.gz", ".tgz", ".tar", H5_SUFFIX):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "images"
    return name


def _unique_names(names: Sequence[str]) -> List[str]:
    """The names with later duplicates (same relative path in two sources) suffixed ``_2``, ``_3``...

    A suffixed name never takes the name of another listed image.
    """
    taken = set(names)
    used = set()
    unique = []
    for name in names:
        candidate, count = name, 1
        while candidate in used or (candidate != name and candidate in taken):
            count += 1
            path = Path(name)
            candidate = path.with_name(f"{path.stem}_{count}{path.suffix}").as_posix()
        used.add(candidate)
        unique.append(candidate)
    return unique
