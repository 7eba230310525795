"""What loading a split kept, skipped and fixed, said once at the start of training.

Bad entries are skipped (never a crash in epoch 3); each skip is counted by
reason with a few examples, so a user sees in one line what was left out:

    train: 200 images, 217 boxes; skipped 3 boxes with zero or negative size
    (ann ids 5, 9, 12), 1 missing image (raccoon-17.jpg)
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List

EXAMPLES_SHOWN = 3


@dataclass
class _Reason:
    noun: str  # "box", "image", "annotation": what was counted
    examples: List[str] = field(default_factory=list)
    count: int = 0


class LoadReport:
    """Counts of kept items and of skipped or corrected entries, by reason.

    ``skip(reason, example, noun)`` records one skipped entry ("1 missing image
    (x.jpg)"); ``note(...)`` records a correction that kept the entry ("2 boxes
    clipped to the image").
    """

    def __init__(self, split: str):
        self.split = split
        self.images = 0
        self.boxes = 0
        self.images_without_boxes = 0
        self.skipped: "OrderedDict[str, _Reason]" = OrderedDict()
        self.notes: "OrderedDict[str, _Reason]" = OrderedDict()

    def skip(self, reason: str, example: object, noun: str = "box") -> None:
        self._add(self.skipped, reason, example, noun)

    def note(self, reason: str, example: object, noun: str = "box") -> None:
        self._add(self.notes, reason, example, noun)

    @staticmethod
    def _add(table: Dict[str, _Reason], reason: str, example: object, noun: str) -> None:
        entry = table.setdefault(reason, _Reason(noun))
        entry.count += 1
        if len(entry.examples) < EXAMPLES_SHOWN:
            entry.examples.append(str(example))

    def skipped_count(self, reason: str) -> int:
        return self.skipped[reason].count if reason in self.skipped else 0

    def noted_count(self, reason: str) -> int:
        return self.notes[reason].count if reason in self.notes else 0

    def summary(self) -> str:
        """One line: counts kept, then every skip and note with examples."""
        line = f"{self.split}: {_plural(self.images, 'image')}, {_plural(self.boxes, 'box')}"
        if self.images_without_boxes:
            line += f" ({self.images_without_boxes} without boxes)"
        if self.skipped:
            line += "; skipped " + ", ".join(_describe(reason, entry) for reason, entry in self.skipped.items())
        if self.notes:
            line += "; " + ", ".join(_describe(reason, entry) for reason, entry in self.notes.items())
        return line


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun}es" if noun.endswith(("x", "s")) else f"{count} {noun}s"


def _describe(reason: str, entry: _Reason) -> str:
    label = "ann ids " if entry.noun in ("box", "annotation") else ""
    examples = ", ".join(entry.examples) + (", ..." if entry.count > len(entry.examples) else "")
    return f"{_plural(entry.count, entry.noun)} {reason} ({label}{examples})"
