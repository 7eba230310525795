"""Torch datasets: COCO detection splits and folders of images for inference.

An item is ``(image, target)``:

- ``image``: float32 [3,H,W], pixels / 255 (nothing else);
- ``target["labels"]``: int64 [N], contiguous 0..C-1 (see :mod:`.categories`);
- ``target["boxes"]``: float32 [N,4], normalised (cx, cy, w, h) in 0..1;
- ``target["image_id"]``: int, the COCO image id (inference: the file's index);
- ``target["orig_size"]``: int64 [2], (w, h) of the original image (EXIF-oriented);
- ``target["size"]``: int64 [2], (w, h) after the transforms;
- ``target["norm_size"]``: float32 [2], (w, h) in original pixels that normalised
  coordinate 1.0 spans; equal to ``orig_size`` unless the resize letterboxes
  (``preserve_aspect_ratio``), so ``boxes * norm_size`` maps back to the original;
- inference items also carry ``target["file_name"]`` (str, the image path).
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

import torch
from torch.utils.data import Dataset

from trainers.errors import UserError

from .coco import RecordTable
from .policy import StopEpochPolicy
from .report import LoadReport
from .sources import IMAGE_EXTENSIONS, ImageReadError, ImageReader, resolve_image_dir
from .transforms import Compose


class CocoDetectionDataset(Dataset):
    """A validated COCO split (:func:`.coco.load_split`) with its transforms."""

    def __init__(self, table: RecordTable, readers: Sequence[ImageReader], transforms: Compose,
                 policy: Optional[StopEpochPolicy] = None):
        self.table, self.readers, self.transforms = table, list(readers), transforms
        self.policy = policy
        self._warned: Set[str] = set()

    def __len__(self) -> int:
        return len(self.table)

    def set_epoch(self, epoch: int) -> None:
        """Stop-epoch policy: strong augmentation ends at ``policy.stop_epoch``."""
        if self.policy is not None:
            self.policy.set_epoch(epoch)

    def raw_target(self, index: int) -> Dict[str, torch.Tensor]:
        """The untransformed target: boxes xyxy in original pixels, labels, ids and size."""
        boxes, labels = self.table.boxes_of(index)
        size = torch.as_tensor(self.table.sizes[index], dtype=torch.int64)
        return {
            "boxes": torch.from_numpy(boxes.copy()).reshape(-1, 4),
            "labels": torch.from_numpy(labels.copy()),
            "image_id": int(self.table.image_ids[index]),
            "orig_size": size,
            "norm_size": size.float(),
        }

    def file_name(self, index: int) -> str:
        return str(self.table.file_names[index])

    def __getitem__(self, index: int):
        # An image that passed the load-time check but fails to decode now (only
        # possible for large splits where headers alone were checked) is replaced by
        # the next one with a warning, instead of killing a worker mid-epoch.
        for attempt in range(len(self)):
            current = (index + attempt) % len(self)
            reader = self.readers[int(self.table.source_index[current])]
            try:
                image = reader.read(self.file_name(current))
            except ImageReadError as error:
                if str(error) not in self._warned:
                    self._warned.add(str(error))
                    print(f"warning: skipping {error}", file=sys.stderr)
                continue
            target = self.raw_target(current)
            if tuple(image.size) != tuple(target["orig_size"].tolist()):
                raise UserError(f"{reader.describe(self.file_name(current))}: size {image.size} changed since "
                                f"loading ({tuple(target['orig_size'].tolist())})")
            if self.policy is None:
                return self.transforms(image, target)
            with self.policy.seeded(index):
                return self.transforms(image, target)
        raise UserError("no image of the split can be read any more")


class ImageFolderDataset(Dataset):
    """Every image under the given folders (or extracted archives), sorted, for inference.

    Items are ``(image, target)`` like the COCO dataset, with empty boxes and
    labels and ``target["file_name"]``.
    """

    def __init__(self, image_dirs: Sequence[str], transforms: Compose, cache_root: Optional[Path] = None):
        self.transforms = transforms
        self.files: List[Path] = []
        image_dirs = [d for d in image_dirs if d]
        if not image_dirs:
            raise UserError("dataset.infer_data_sources.image_dir: no folder given")
        for image_dir in image_dirs:
            root = resolve_image_dir(image_dir, cache_root)
            found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(root).parts))
            if not found:
                raise UserError(f"image_dir {image_dir}: no images ({', '.join(IMAGE_EXTENSIONS)})")
            self.files += found
        self._reader = ImageReader(Path("/"))
        # Headers are checked now so a broken file is reported at the start, not mid-run.
        self.report = LoadReport("infer")
        with ThreadPoolExecutor(max_workers=8) as pool:
            errors = list(pool.map(self._header_error, self.files))
        for path, error in zip(list(self.files), errors):
            if error is not None:
                self.report.skip("missing" if error.endswith("file not found") else "unreadable", path.name,
                                 noun="image")
        self.files = [path for path, error in zip(self.files, errors) if error is None]
        self.report.images = len(self.files)
        if not self.files:
            raise UserError(f"infer: no readable images in {', '.join(image_dirs)} ({self.report.summary()})")

    def _header_error(self, path: Path) -> Optional[str]:
        try:
            self._reader.size_of(str(path))
            return None
        except ImageReadError as error:
            return str(error)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        path = self.files[index]
        try:
            image = self._reader.read(str(path))
        except ImageReadError as error:
            raise UserError(str(error))
        size = torch.tensor(image.size, dtype=torch.int64)
        target = {
            "boxes": torch.zeros((0, 4), dtype=torch.float32),
            "labels": torch.zeros((0,), dtype=torch.int64),
            "image_id": index,
            "orig_size": size,
            "norm_size": size.float(),
            "file_name": str(path),
        }
        return self.transforms(image, target)
