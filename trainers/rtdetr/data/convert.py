"""Pascal VOC xml and YOLO txt labels -> COCO detection json, and a seeded train/val split.

Conventions (stated once, used by both formats):

- category ids start at 1, in the order of ``classes`` (a ``--classes`` file
  with one name a line; otherwise VOC names sorted alphabetically, YOLO names
  from ``classes.txt``/``data.yaml`` next to the labels, or ``class<k>``);
- ``bbox`` = [x, y, w, h] in pixels; VOC corners give
  [xmin, ymin, xmax - xmin, ymax - ymin] (as the raccoon set's conversion),
  YOLO's normalised centre boxes are scaled by the oriented image size;
- boxes are clipped to the image; empty or fully outside boxes, unknown class
  names or indices, and missing images are skipped and counted in the report;
- ``file_name`` is relative to the images folder; image ids start at 1.
"""
from __future__ import annotations

import json
import math
import random
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from trainers.errors import UserError

from .report import LoadReport
from .sources import IMAGE_EXTENSIONS, ImageReadError, ImageReader

Coco = Dict[str, list]


def read_class_names(path: Path) -> List[str]:
    """One class name a line (blank lines ignored); ``.yaml`` files: YOLO's ``names`` list or dict."""
    if not path.is_file():
        raise UserError(f"classes file {path}: not found")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names, key=int)]
        if not isinstance(names, list) or not names:
            raise UserError(f"classes file {path}: no 'names' list")
        return [str(n) for n in names]
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise UserError(f"classes file {path}: no class names")
    return names


def voc_to_coco(xml_dir: Path, images_dir: Optional[Path] = None, classes: Optional[Sequence[str]] = None,
                skip_difficult: bool = False) -> Tuple[Coco, LoadReport]:
    """Every ``*.xml`` under ``xml_dir``; images are looked up in ``images_dir`` (default: ``xml_dir``)."""
    xml_files = sorted(Path(xml_dir).rglob("*.xml"))
    if not xml_files:
        raise UserError(f"--input {xml_dir}: no .xml files")
    images_dir = Path(images_dir or xml_dir)
    reader = ImageReader(images_dir)
    report = LoadReport("converted")
    parsed = []
    for xml_file in xml_files:
        try:
            root = ElementTree.parse(xml_file).getroot()
        except ElementTree.ParseError as error:
            report.skip("not parseable", f"{xml_file.name}: {error}", noun="xml file")
            continue
        file_name = (root.findtext("filename") or "").strip() or xml_file.with_suffix(".jpg").name
        objects = []
        for index, obj in enumerate(root.findall("object")):
            name = (obj.findtext("name") or "").strip()
            box = obj.find("bndbox")
            try:
                corners = [float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (AttributeError, TypeError, ValueError):
                report.skip("without a numeric bndbox", f"{xml_file.name} object {index}", noun="object")
                continue
            if skip_difficult and (obj.findtext("difficult") or "0").strip() == "1":
                report.skip("marked difficult (--skip-difficult)", f"{xml_file.name} object {index}", noun="object")
                continue
            objects.append((name, corners, f"{xml_file.name} object {index}"))
        parsed.append((xml_file, file_name, objects))
    names = list(classes) if classes else sorted({name for _, _, objects in parsed for name, _, _ in objects})
    category_of = {name: index + 1 for index, name in enumerate(names)}
    coco = _empty_coco(names)
    for xml_file, file_name, objects in parsed:
        size = _image_size(reader, file_name, report)
        if size is None:
            continue
        image_id = _add_image(coco, file_name, size)
        for name, (x0, y0, x1, y1), where in objects:
            if name not in category_of:
                report.skip("with a class not in --classes", f"{where} ({name})", noun="object")
                continue
            _add_box(coco, image_id, category_of[name], (x0, y0, x1, y1), size, where, report)
    return _finish(coco, report)


def yolo_to_coco(labels_dir: Path, images_dir: Optional[Path] = None,
                 classes: Optional[Sequence[str]] = None) -> Tuple[Coco, LoadReport]:
    """Every image under ``images_dir`` with ``labels_dir/<same relative path>.txt`` (absent: no boxes).

    ``images_dir`` defaults to the ``images`` folder beside a ``labels`` folder
    (YOLO's layout), else ``labels_dir`` itself.
    """
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise UserError(f"--input {labels_dir}: not a folder")
    if images_dir is None:
        sibling = labels_dir.parent / labels_dir.name.replace("labels", "images")
        images_dir = sibling if labels_dir.name.startswith("labels") and sibling.is_dir() else labels_dir
    images_dir = Path(images_dir)
    image_files = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not image_files:
        raise UserError(f"--images {images_dir}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    if classes is None:
        for candidate in (labels_dir / "classes.txt", labels_dir.parent / "classes.txt",
                          labels_dir.parent / "data.yaml"):
            if candidate.is_file():
                classes = read_class_names(candidate)
                break
    reader = ImageReader(images_dir)
    report = LoadReport("converted")
    rows_by_image = []
    highest = -1
    for image_file in image_files:
        relative = image_file.relative_to(images_dir)
        label_file = labels_dir / relative.with_suffix(".txt")
        rows = []
        if label_file.is_file():
            for line_number, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), start=1):
                fields = line.split()
                if not fields:
                    continue
                where = f"{label_file.name}:{line_number}"
                try:
                    index, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:5])
                    if len(fields) < 5 or not all(math.isfinite(v) for v in (cx, cy, w, h)):
                        raise ValueError
                except ValueError:
                    report.skip("not of the form 'class cx cy w h'", where, noun="label line")
                    continue
                highest = max(highest, index)
                rows.append((index, cx, cy, w, h, where))
        rows_by_image.append((relative.as_posix(), rows))
    names = list(classes) if classes else [f"class{k}" for k in range(highest + 1)]
    coco = _empty_coco(names)
    for file_name, rows in rows_by_image:
        size = _image_size(reader, file_name, report)
        if size is None:
            continue
        image_id = _add_image(coco, file_name, size)
        width, height = size
        for index, cx, cy, w, h, where in rows:
            if not 0 <= index < len(names):
                report.skip("with a class index outside the class list", f"{where} ({index})", noun="label line")
                continue
            corners = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
            _add_box(coco, image_id, index + 1, corners, size, where, report)
    return _finish(coco, report)


def split_coco(coco: Coco, train_fraction: float, seed: int = 0) -> Tuple[Coco, Coco]:
    """Images shuffled with ``random.Random(seed)``; the first ``round(fraction * n)`` go to train.

    Both parts keep every category; each gets at least one image when there are two or more.
    """
    if not 0.0 < train_fraction < 1.0:
        raise UserError(f"--split {train_fraction}: must be between 0 and 1 (the train fraction)")
    image_ids = [image["id"] for image in coco["images"]]
    if len(image_ids) < 2:
        raise UserError(f"--split needs at least 2 images, found {len(image_ids)}")
    random.Random(seed).shuffle(image_ids)
    count = min(max(round(train_fraction * len(image_ids)), 1), len(image_ids) - 1)
    parts = []
    for chosen in (set(image_ids[:count]), set(image_ids[count:])):
        parts.append({
            "images": [image for image in coco["images"] if image["id"] in chosen],
            "annotations": [ann for ann in coco["annotations"] if ann["image_id"] in chosen],
            "categories": coco["categories"],
        })
    return parts[0], parts[1]


def write_coco(coco: Coco, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco, indent=1), encoding="utf-8")


def _empty_coco(names: Sequence[str]) -> Coco:
    if len(set(names)) != len(names):
        raise UserError(f"class names repeat: {list(names)}")
    return {"images": [], "annotations": [],
            "categories": [{"id": index + 1, "name": name, "supercategory": "none"} for index, name in enumerate(names)]}


def _image_size(reader: ImageReader, file_name: str, report: LoadReport) -> Optional[Tuple[int, int]]:
    try:
        return reader.size_of(file_name)
    except ImageReadError as error:
        report.skip("missing" if str(error).endswith("file not found") else "unreadable", file_name, noun="image")
        return None


def _add_image(coco: Coco, file_name: str, size: Tuple[int, int]) -> int:
    image_id = len(coco["images"]) + 1
    coco["images"].append({"id": image_id, "file_name": file_name, "width": size[0], "height": size[1]})
    return image_id


def _add_box(coco: Coco, image_id: int, category_id: int, corners, size, where: str, report: LoadReport) -> None:
    width, height = size
    x0, y0, x1, y1 = corners
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
    if x1 <= x0 or y1 <= y0:
        report.skip("with zero or negative size", where, noun="object")
        return
    if cx1 <= cx0 or cy1 <= cy0:
        report.skip("outside the image", where, noun="object")
        return
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        report.note("clipped to the image", where, noun="object")
    w, h = cx1 - cx0, cy1 - cy0
    coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                "category_id": category_id, "bbox": [cx0, cy0, w, h], "area": w * h, "iscrowd": 0})


def _finish(coco: Coco, report: LoadReport) -> Tuple[Coco, LoadReport]:
    report.images = len(coco["images"])
    report.boxes = len(coco["annotations"])
    with_boxes = {ann["image_id"] for ann in coco["annotations"]}
    report.images_without_boxes = sum(1 for image in coco["images"] if image["id"] not in with_boxes)
    if not coco["images"]:
        raise UserError(f"no images could be converted ({report.summary()})")
    return coco, report
