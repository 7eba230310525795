"""COCO detection files -> validated, compact per-image records.

Everything that can be wrong in a COCO file is found here, at load time, and
either raises a one-line :class:`UserError` naming the file and the entry
(unreadable JSON, duplicate image ids, an empty split) or is skipped and
counted in the :class:`LoadReport` (missing or corrupt images, boxes of zero
or negative size or outside the image, annotations for unknown images or
categories, crowd regions).  Training then never meets bad data.

Records are kept as a few flat numpy arrays rather than one Python object per
image: DataLoader workers share them copy-on-write without touching refcounts
per image, which is what TAO's ``dataset_type: serialized`` is for (RAM that
grows with ``workers`` on large sets).
"""
from __future__ import annotations

import functools
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from trainers.errors import UserError

from .categories import CategoryMap
from .report import LoadReport
from .sources import ImageReadError, ImageReader, resolve_image_dir

# Up to this many images are fully decoded at load time (a truncated JPEG only
# fails when decoded); larger sets check headers only and a late decoding
# failure is skipped with a warning in the dataset.
FULL_DECODE_LIMIT = 2000


@dataclass(frozen=True)
class CocoSource:
    """One ``{json_file, image_dir}`` entry of a spec's ``*_data_sources``."""

    json_file: str
    image_dir: str


@dataclass
class RecordTable:
    """All images of a split and their boxes, as flat arrays.

    ``boxes[offsets[i]:offsets[i+1]]`` are image ``i``'s boxes, float32 [N,4]
    (x0, y0, x1, y1) in pixels of the oriented image; ``labels`` int64 [N] are
    contiguous labels; ``sizes`` int64 [I,2] is (width, height) per image.
    """

    image_ids: np.ndarray      # int64 [I]
    file_names: np.ndarray     # str_ [I]
    source_index: np.ndarray   # int64 [I]: which reader holds the image
    sizes: np.ndarray          # int64 [I, 2] (w, h)
    offsets: np.ndarray        # int64 [I + 1]
    boxes: np.ndarray          # float32 [M, 4]
    labels: np.ndarray         # int64 [M]

    def __len__(self) -> int:
        return len(self.image_ids)

    def boxes_of(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        start, stop = self.offsets[index], self.offsets[index + 1]
        return self.boxes[start:stop], self.labels[start:stop]


# The category map and the split read the same training json one after the other;
# parsing a COCO-sized file takes seconds, so the last one is kept until
# :func:`forget_parsed_json` (the parsed objects are large: not kept for training).
@functools.lru_cache(maxsize=1)
def _read_json_cached(path: str, mtime_ns: int, size: int) -> Any:
    with open(path, "r", encoding="utf-8") as file:
        return json.load(file)


def forget_parsed_json() -> None:
    _read_json_cached.cache_clear()


def read_coco_json(json_file: str) -> Dict[str, Any]:
    """The parsed file; a UserError when it is missing, not JSON or not a COCO detection file."""
    if not json_file:
        raise UserError("json_file is empty")
    try:
        stat = os.stat(json_file)
        data = _read_json_cached(str(json_file), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        raise UserError(f"{json_file}: file not found")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{json_file}: cannot read ({error})")
    except json.JSONDecodeError as error:
        raise UserError(f"{json_file}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{json_file}: not a COCO detection file (no 'images' list)")
    for key in ("annotations", "categories"):
        if key in data and not isinstance(data[key], list):
            raise UserError(f"{json_file}: '{key}' must be a list")
    return data


def category_map_from_files(json_files: Sequence[str], report: Optional[LoadReport] = None) -> CategoryMap:
    """The union of the files' ``categories``; ids used by annotations but not declared are added.

    An undeclared id gets the name ``"category <id>"`` and a note in the report,
    so a file without a ``categories`` list still trains.
    """
    declared = []
    used: Dict[int, str] = {}
    for json_file in json_files:
        data = read_coco_json(json_file)
        declared.append((json_file, data.get("categories") or []))
        for annotation in data.get("annotations") or []:
            if isinstance(annotation, Mapping) and _is_int(annotation.get("category_id")):
                used.setdefault(int(annotation["category_id"]), json_file)
    cmap = CategoryMap.from_coco_categories(declared)
    missing = sorted(cid for cid in used if cid not in cmap)
    if missing:
        for cid in missing:
            if report is not None:
                report.note("used by annotations but not in 'categories' (added)", f"id {cid} in {used[cid]}",
                            noun="category id")
        extra = [(f"{used[cid]}", [{"id": cid, "name": f"category {cid}"}]) for cid in missing]
        cmap = CategoryMap.from_coco_categories(declared + extra)
    if len(cmap) == 0:
        raise UserError(f"{', '.join(json_files)}: no categories and no annotations with a category_id")
    return cmap


def load_split(split: str, sources: Sequence[CocoSource], category_map: CategoryMap,
               cache_root: Optional[Path] = None, full_decode: Optional[bool] = None,
               ) -> Tuple[RecordTable, List[ImageReader], LoadReport]:
    """Read and validate every source of a split; their images are concatenated in order.

    ``full_decode`` None decodes every image when the split has at most
    :data:`FULL_DECODE_LIMIT` images and reads headers otherwise.
    """
    if not sources:
        raise UserError(f"{split}: no data sources given")
    report = LoadReport(split)
    readers: List[ImageReader] = []
    parts: List[Dict[str, list]] = []
    for source_index, source in enumerate(sources):
        data = read_coco_json(source.json_file)
        reader = ImageReader(resolve_image_dir(source.image_dir, cache_root))
        readers.append(reader)
        parts.append(_validate_source(data, source, source_index, reader, category_map, report, full_decode))
    table = _to_table(parts)
    report.images = len(table)
    report.boxes = len(table.boxes)
    report.images_without_boxes = int(np.sum(np.diff(table.offsets) == 0))
    if len(table) == 0:
        files = ", ".join(s.json_file for s in sources)
        raise UserError(f"{split}: no usable images in {files} ({report.summary()})")
    annotations = sum(part["annotations_judged"] for part in parts)
    if annotations and len(table.boxes) == 0:
        # Boxes were given and every one was refused for its own fault (not only because its image was
        # skipped): training or scoring on this split would be meaningless.
        files = ", ".join(s.json_file for s in sources)
        raise UserError(f"{split}: none of the {annotations} annotations in {files} is usable ({report.summary()})")
    return table, readers, report


def _validate_source(data: Dict[str, Any], source: CocoSource, source_index: int, reader: ImageReader,
                     category_map: CategoryMap, report: LoadReport, full_decode: Optional[bool]) -> Dict[str, list]:
    json_file = source.json_file
    images: Dict[int, Dict[str, Any]] = {}
    for position, entry in enumerate(data["images"]):
        if not isinstance(entry, Mapping) or not _is_int(entry.get("id")) or not entry.get("file_name"):
            report.skip("without an integer 'id' and a 'file_name'", f"images[{position}]", noun="image entry")
            continue
        image_id = int(entry["id"])
        if image_id in images:
            raise UserError(f"{json_file}: image id {image_id} appears twice "
                            f"({images[image_id]['file_name']} and {entry['file_name']})")
        images[image_id] = {"file_name": str(entry["file_name"]), "json_size": (entry.get("width"), entry.get("height"))}

    decode = full_decode if full_decode is not None else len(images) <= FULL_DECODE_LIMIT
    probe = (lambda name: reader.read(name).size) if decode else reader.size_of

    def check(image_id: int) -> Tuple[int, Optional[Tuple[int, int]], Optional[str]]:
        try:
            return image_id, probe(images[image_id]["file_name"]), None
        except ImageReadError as error:
            return image_id, None, str(error)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        checked = list(pool.map(check, images))
    for image_id, size, error in checked:
        info = images[image_id]
        if size is None:
            report.skip(_image_reason(error), info["file_name"], noun="image")
            del images[image_id]
            continue
        info["size"] = size
        json_w, json_h = info["json_size"]
        if json_w is not None and json_h is not None and (int(json_w), int(json_h)) != tuple(size):
            report.note("with a width/height different from the json (the file's size is used)",
                        info["file_name"], noun="image")

    boxes: Dict[int, List[List[float]]] = {image_id: [] for image_id in images}
    labels: Dict[int, List[int]] = {image_id: [] for image_id in images}
    known_ids = {int(e["id"]) for e in data["images"] if isinstance(e, Mapping) and _is_int(e.get("id"))}
    seen_ann_ids = set()
    judged = 0   # annotations kept or refused for their own fault (not for a skipped image)
    for position, ann in enumerate(data.get("annotations") or []):
        if not isinstance(ann, Mapping) or not _is_int(ann.get("image_id")):
            report.skip("without an integer image_id", f"annotations[{position}]", noun="annotation")
            judged += 1
            continue
        ann_id = ann.get("id", f"[{position}]")
        if ann_id in seen_ann_ids:
            report.note("with a duplicate annotation id (kept)", ann_id, noun="annotation")
        seen_ann_ids.add(ann_id)
        image_id = int(ann["image_id"])
        if image_id not in known_ids:
            report.skip("for unknown image ids", ann_id, noun="annotation")
            judged += 1
            continue
        if image_id not in images:
            continue  # the image itself was skipped and counted
        judged += 1
        if ann.get("iscrowd", 0):
            report.skip("marked iscrowd (crowd regions are not training targets)", ann_id)
            continue
        category_id = ann.get("category_id")
        if not _is_int(category_id) or int(category_id) not in category_map:
            report.skip("with a category id not in the class map", f"{ann_id} (category {category_id})")
            continue
        box = ann.get("bbox")
        if (not isinstance(box, (list, tuple)) or len(box) != 4
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)):
            report.skip("with a malformed bbox (need 4 finite numbers)", ann_id)
            continue
        x, y, w, h = (float(v) for v in box)
        if w <= 0 or h <= 0:
            report.skip("with zero or negative size", ann_id)
            continue
        width, height = images[image_id]["size"]
        x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, float(width)), min(y + h, float(height))
        if x1 <= x0 or y1 <= y0:
            report.skip("outside the image", ann_id)
            continue
        if (x0, y0, x1, y1) != (x, y, x + w, y + h):
            report.note("clipped to the image", ann_id)
        boxes[image_id].append([x0, y0, x1, y1])
        labels[image_id].append(category_map.label_of(int(category_id)))

    order = [image_id for image_id in (int(e["id"]) for e in data["images"]
                                       if isinstance(e, Mapping) and _is_int(e.get("id"))) if image_id in images]
    return {
        "image_ids": order,
        "file_names": [images[i]["file_name"] for i in order],
        "source_index": [source_index] * len(order),
        "sizes": [images[i]["size"] for i in order],
        "boxes": [boxes[i] for i in order],
        "labels": [labels[i] for i in order],
        "annotations_judged": judged,
    }


def _image_reason(error: str) -> str:
    """The report's reason phrase ("1 image missing", "2 images unreadable")."""
    return "missing" if error.endswith(("file not found", "frame not found")) else "unreadable"


def _to_table(parts: List[Dict[str, list]]) -> RecordTable:
    image_ids, file_names, source_index, sizes, counts, boxes, labels = [], [], [], [], [], [], []
    for part in parts:
        image_ids += part["image_ids"]
        file_names += part["file_names"]
        source_index += part["source_index"]
        sizes += part["sizes"]
        for image_boxes, image_labels in zip(part["boxes"], part["labels"]):
            counts.append(len(image_boxes))
            boxes += image_boxes
            labels += image_labels
    return RecordTable(
        image_ids=np.asarray(image_ids, dtype=np.int64),
        file_names=np.asarray(file_names, dtype=np.str_),  # fixed width: no per-item refcounts
        source_index=np.asarray(source_index, dtype=np.int64),
        sizes=np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
        offsets=np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
    )


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()
