"""Atomic file replacement: a reader, or the file after a crash, holds the old content or the new, never half.

The content is written to a hidden temporary file in the destination's own folder (a rename is atomic only
within one filesystem), then renamed over the destination with `os.replace`. A durable write also flushes the
file to disk before the rename and the folder after it, so the new content survives a power loss too (a few
milliseconds each: worth it for the offline tables, not on a push's latency path). A failed write removes the
temporary file and leaves the destination as it was.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A unique hidden name beside `path` (`.<name>.<random>.tmp`): readers listing `*.parquet`, or skipping dot
    files, never see it, and two writers of the same path never share one."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"


@contextmanager
def atomic_write(path: Path | str, durable: bool = True) -> Iterator[Path]:
    """The temporary path to write `path`'s new content to; on a clean exit of the `with` block it replaces
    `path` (`durable`: fsynced, file and folder), on an error it is deleted and `path` is left untouched."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
