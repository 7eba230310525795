"""Write a file so that readers see either the old or the new content, never half of it.

The content goes to a temporary sibling, is flushed to disk, then renamed over
the target (``os.replace`` is atomic on one filesystem).  A crash or a full
disk leaves the old file and no temporary behind.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomic(path: os.PathLike | str, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(handle)`` on a binary temporary sibling of ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        # A full disk often surfaces as the writer's own error (torch.save: "unexpected pos ..."); name the cause.
        full = isinstance(error, (OSError, RuntimeError)) and _nearly_full(path.parent)
        Path(tmp).unlink(missing_ok=True)
        if full and not (isinstance(error, OSError) and error.errno == errno.ENOSPC):
            raise OSError(errno.ENOSPC, f"No space left on device while writing {path}") from error
        raise
    return path


def same_file_atomic(source: os.PathLike | str, path: os.PathLike | str) -> Path:
    """Make ``path`` hold what ``source`` holds, atomically: a hard link to it, or a copy where the
    filesystem has no hard links (or ``source`` is on another one).

    Why a link: the trainer's epoch, best and latest checkpoints are often the same state, and
    serializing and syncing a checkpoint (136 MB for the tiny test model with its optimizer) is most of
    an epoch's writing.  Every writer here replaces a file by renaming a new one over it, never in place,
    so rewriting one name later leaves the other names' content as it was.
    """
    source, path = Path(source), Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        os.link(source, tmp)
    except OSError:   # no hard links here (EPERM, ENOTSUP, EXDEV, EMLINK): a synced copy
        return write_atomic(path, lambda handle: _copy_into(source, handle))
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _copy_into(source: Path, handle: BinaryIO) -> None:
    with open(source, "rb") as original:
        shutil.copyfileobj(original, handle, length=16 * 1024 * 1024)


def remove_stale_temporaries(folder: os.PathLike | str) -> None:
    """Delete the temporaries (``.NAME.XXXX.tmp``) that writers killed outright (SIGKILL, OOM) left under
    ``folder``; their targets are never half-written.  Only for a folder no live process writes to."""
    for path in Path(folder).rglob(".*.tmp"):
        path.unlink(missing_ok=True)


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 256 * 1024
    except OSError:
        return False


def write_text_atomic(path: os.PathLike | str, text: str) -> Path:
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))
