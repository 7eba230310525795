"""Dataset category ids <-> the contiguous labels the model predicts.

RT-DETR's classification head has ``num_classes`` outputs and the matcher
indexes them with the target labels, so labels must be ``0..C-1``.  COCO files
use arbitrary ids (1-based, sparse like 201/305, or COCO's 91-id layout with 80
classes).  Using the ids directly as labels is the classic failure of the
official code on custom data (lyuwenyu/RT-DETR #70, #99, #228: a device-side
assert in the matcher or mAP 0).  We therefore always remap: labels are the
categories sorted by id, and every output (evaluation, inference files, export
metadata) maps back through the same :class:`CategoryMap`.

A map is built from the COCO ``categories`` of every training source (their
union), from the fixed MS-COCO 80-class table (``remap_mscoco_category``), or
from a TAO ``label_map.txt`` (one class name per line) for inference.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import torch

from trainers.errors import UserError

# The 80 MS-COCO detection classes with their ids in the 91-id numbering of
# instances_*.json (the gaps are classes that were never annotated).
MSCOCO_CATEGORIES: Tuple[Tuple[int, str], ...] = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"),
    (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"),
    (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"), (32, "tie"),
    (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"), (37, "sports ball"),
    (38, "kite"), (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"),
    (42, "surfboard"), (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"),
    (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"),
    (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"),
    (64, "potted plant"), (65, "bed"), (67, "dining table"), (70, "toilet"), (72, "tv"),
    (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"), (77, "cell phone"),
    (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"), (82, "refrigerator"),
    (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"),
    (89, "hair drier"), (90, "toothbrush"),
)


class CategoryMap:
    """An ordered list of (dataset category id, class name); label = position in the list.

    >>> cmap = CategoryMap([201, 305], ["cat", "dog"])
    >>> cmap.label_of(305), cmap.category_id_of(0)
    (1, 201)
    """

    def __init__(self, category_ids: Sequence[int], names: Sequence[str]):
        if len(category_ids) != len(names):
            raise ValueError("category_ids and names must have the same length")
        if len(set(category_ids)) != len(category_ids):
            raise ValueError(f"duplicate category ids in {list(category_ids)}")
        self.category_ids: List[int] = [int(i) for i in category_ids]
        self.names: List[str] = [str(n) for n in names]
        self._label_of: Dict[int, int] = {cid: label for label, cid in enumerate(self.category_ids)}

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_coco_categories(cls, category_lists: Iterable[Tuple[str, Sequence[Mapping]]]) -> "CategoryMap":
        """The union of the ``categories`` of several COCO files, sorted by id.

        ``category_lists`` yields ``(json path, categories)``; the path only
        names the file in errors.  The same id with two different names in two
        files is an error (the sources would disagree about what a label means).
        """
        names_by_id: Dict[int, str] = {}
        where_by_id: Dict[int, str] = {}
        for json_path, categories in category_lists:
            for index, category in enumerate(categories):
                if not isinstance(category, Mapping) or "id" not in category:
                    raise UserError(f"{json_path}: categories[{index}] has no 'id'")
                try:
                    cid = int(category["id"])
                except (TypeError, ValueError):
                    raise UserError(f"{json_path}: categories[{index}] id {category['id']!r} is not an integer")
                name = str(category.get("name", cid))
                if cid in names_by_id and names_by_id[cid] != name:
                    raise UserError(f"{json_path}: category id {cid} is named {name!r} here but "
                                    f"{names_by_id[cid]!r} in {where_by_id[cid]}")
                names_by_id[cid] = name
                where_by_id.setdefault(cid, json_path)
        ids = sorted(names_by_id)
        return cls(ids, [names_by_id[i] for i in ids])

    @classmethod
    def mscoco(cls) -> "CategoryMap":
        """COCO's 91-id numbering onto 80 contiguous labels (``remap_mscoco_category``)."""
        return cls([cid for cid, _ in MSCOCO_CATEGORIES], [name for _, name in MSCOCO_CATEGORIES])

    @classmethod
    def from_label_map(cls, path: str, first_id: int = 1) -> "CategoryMap":
        """A TAO ``label_map.txt`` (one class name per line, blank lines ignored).

        TAO numbers the lines from 1 (``{c: i + 1}`` in its inference code), which
        matches COCO files whose ids start at 1.  A ``.json`` path is read as a
        COCO file (its ``categories``), or as the ``{"category_ids", "names"}``
        dict written by :meth:`to_dict`.
        """
        file = Path(path)
        if not file.is_file():
            raise UserError(f"classmap {path}: file not found")
        if file.suffix.lower() == ".json":
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise UserError(f"classmap {path}: not readable JSON ({error})")
            if isinstance(data, dict) and "categories" in data:
                return cls.from_coco_categories([(str(path), data["categories"])])
            if isinstance(data, dict) and "category_ids" in data:
                return cls.from_dict(data)
            raise UserError(f"classmap {path}: expected COCO 'categories' or 'category_ids'/'names'")
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"classmap {path}: not readable text ({error})")
        names = [line.strip() for line in lines if line.strip()]
        if not names:
            raise UserError(f"classmap {path}: no class names (expected one name per line)")
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            raise UserError(f"classmap {path}: class name {duplicate!r} appears twice")
        return cls(list(range(first_id, first_id + len(names))), names)

    @classmethod
    def from_dict(cls, data: Mapping) -> "CategoryMap":
        """Inverse of :meth:`to_dict` (as stored in checkpoints and export metadata)."""
        return cls(list(data["category_ids"]), list(data["names"]))

    def to_dict(self) -> Dict[str, list]:
        """Plain data, safe for ``torch.save`` with ``weights_only`` loading and for JSON."""
        return {"category_ids": list(self.category_ids), "names": list(self.names)}

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.category_ids)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CategoryMap) and self.category_ids == other.category_ids
                and self.names == other.names)

    def __repr__(self) -> str:
        pairs = ", ".join(f"{cid}:{name}" for cid, name in zip(self.category_ids, self.names))
        return f"CategoryMap({pairs})"

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._label_of

    def label_of(self, category_id: int) -> int:
        """Contiguous label of a dataset category id (KeyError when unknown)."""
        return self._label_of[int(category_id)]

    def category_id_of(self, label: int) -> int:
        """Dataset category id of a contiguous label."""
        return self.category_ids[int(label)]

    def name_of(self, label: int) -> str:
        return self.names[int(label)]

    def labels_to_category_ids(self, labels: torch.Tensor) -> torch.Tensor:
        """Map a tensor of labels (any shape, int) to dataset ids (int64, same shape).

        Labels >= ``len(self)`` (the spare outputs of a head sized with NVIDIA's
        "+1" habit) have no category; they map to -1 so callers can drop them.
        """
        table = torch.tensor(self.category_ids + [-1], dtype=torch.int64, device=labels.device)
        index = labels.long().clamp(min=0, max=len(self))
        index = torch.where(labels.long() >= len(self), torch.full_like(index, len(self)), index)
        return table[index]

    def check_num_classes(self, num_classes: int, where: str = "dataset.num_classes") -> None:
        """The head needs one output per category; extra outputs are allowed (TAO's "+1")."""
        if int(num_classes) < len(self):
            raise UserError(f"{where} is {num_classes} but the data has {len(self)} categories "
                            f"(ids {self._id_summary()}); set it to at least {len(self)}")

    def _id_summary(self) -> str:
        ids = self.category_ids
        return ", ".join(map(str, ids)) if len(ids) <= 8 else f"{ids[0]}, {ids[1]}, ..., {ids[-1]}"
