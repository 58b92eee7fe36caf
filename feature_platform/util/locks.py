"""Exclusive file locks across processes and threads (`filelock`, an `flock` on Unix).

Each call opens the lock file afresh, so two threads of one process contend as two processes do. The lock
file stays in place on release: waiters share its inode, and deleting it would let two holders lock two files.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LockTimeout = Timeout  # raised when `timeout` passes with the lock still taken (a TimeoutError)


@contextmanager
def exclusive(path: Path | str, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created with its folder when missing) for the `with` block;
    wait for it at most `timeout` seconds (None: for ever), else raise `LockTimeout`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path, timeout=-1 if timeout is None else timeout):
        yield
