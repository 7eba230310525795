"""Forward hooks that keep what a model computed in its latest forward, for the distillation losses."""
from __future__ import annotations

from typing import Dict, List


class Tap:
    """Holds the values its hooks saw (``tap.values[name]``, or ``tap.name``) until cleared.

    Subclasses register their hooks and append the handles to ``_handles``;
    ``remove`` detaches them all.
    """

    def __init__(self) -> None:
        self.values: Dict[str, object] = {}
        self._handles: List = []

    def __getattr__(self, name: str):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def clear(self) -> None:
        self.values.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.values.clear()
