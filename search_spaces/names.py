"""Dotted key paths and "did you mean" suggestions for misspelled spec keys."""
from __future__ import annotations

import difflib
from typing import Iterable, Optional, Sequence, Union

PathPart = Union[str, int]


def dotted(parts: Iterable[PathPart]) -> str:
    """``("dataset", "train_data_sources", 0, "image_dir")`` -> ``dataset.train_data_sources.0.image_dir``."""
    return ".".join(str(part) for part in parts)


def did_you_mean(key: str, siblings: Sequence[str], all_paths: Sequence[str] = ()) -> Optional[str]:
    """The most likely intended name for an unknown ``key``, or None.

    A close spelling among the keys allowed at the same level wins; otherwise a
    key of the same (or a close) name elsewhere in the spec is offered as a full
    dotted path, which catches keys put in the wrong section (``train.lr`` for
    ``train.optim.lr``).
    """
    close = difflib.get_close_matches(key, list(siblings), n=1, cutoff=0.6)
    if close:
        return close[0]
    leaf_names = {}
    for path in all_paths:
        leaf_names.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    if key in leaf_names:
        return leaf_names[key][0]
    close = difflib.get_close_matches(key, list(leaf_names), n=1, cutoff=0.75)
    if close:
        return leaf_names[close[0]][0]
    return None


def unknown_key_message(path: str, key: str, siblings: Sequence[str], all_paths: Sequence[str] = ()) -> str:
    """One line: ``path: unknown key 'key' (did you mean 'x'?)``."""
    where = f"{path}.{key}" if path else key
    suggestion = did_you_mean(key, siblings, all_paths)
    hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
    return f"{where}: unknown key{hint}"
