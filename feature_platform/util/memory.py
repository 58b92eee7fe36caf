"""Give the memory a finished chunk of work freed back to the operating system, and set the allocators up so that
it can be: one allocator for Arrow and numpy/pandas (`share_allocator`), large blocks mapped on their own
(`map_large_blocks`).

numpy and pandas allocate through glibc's malloc, and so does Arrow once `share_allocator` has run (else through
its own pool, mimalloc or jemalloc); an allocator keeps freed pages for reuse, so after a chunk of a range run the
process holds the chunk's peak whether or not the next chunk needs it. `release_unused` returns them (Arrow's
default pool's `release_unused`, glibc's `malloc_trim`); elsewhere (another libc) it does what it can.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys


def _glibc(name: str):
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or None), name)
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _glibc("malloc_trim")
_MALLOPT = _glibc("mallopt")
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
# Blocks of at least this size get their own mapping (see `map_large_blocks`). 1, 2 and 4 MiB measured alike (the
# year backfill's peak in one process 586-618 MB), 256 KiB 30% slower, 16 MiB 621 MB.
MMAP_THRESHOLD = 4 << 20


def release_unused() -> None:
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)


def map_large_blocks() -> None:
    """Fix glibc's mmap threshold at `MMAP_THRESHOLD`, unless the environment set it (`MALLOC_MMAP_THRESHOLD_`, or
    `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`). Called when the package is imported.

    glibc serves a block above the threshold with its own mapping, given back to the system when it is freed, and
    a smaller one from its heap, whose freed space it keeps. The threshold starts at 128 KiB and rises to the size
    of every mapped block freed, up to 32 MiB: once a range run had freed its first large array, arrays of up to
    32 MiB (a chunk's columns, its events) came from the heap, and the holes they left behind neither went back
    nor fitted the next run's arrays. The year backfill in one process (4 runs): peak RSS 730-739 MB -> 594-604,
    the same time. A fixed threshold also stops the rise."""
    if _MALLOPT is None or "MALLOC_MMAP_THRESHOLD_" in os.environ \
            or "glibc.malloc.mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return
    _MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def share_allocator() -> None:
    """Make glibc's malloc Arrow's default allocator, as it is numpy's and pandas', unless the environment chose
    one: sets Arrow's own `ARROW_DEFAULT_MEMORY_POOL` to `system` if it is unset and pyarrow is not imported yet
    (Arrow reads it once, when pyarrow is loaded; `pyarrow.set_memory_pool` would change only the pool of
    pyarrow's Python calls, leaving Arrow's C++ internals on mimalloc: two allocators, more memory). Called when
    the package is imported; the processes it starts (Dagster's run workers) inherit the setting.

    A range run passes memory back and forth between Arrow (Parquet reads and writes, conversions) and
    numpy/pandas (the aggregation, validation): with one allocator, what one frees the other reuses, instead of
    each keeping its own freed pages (the year backfill in one process: peak RSS 788-793 -> 696-700 MB, the
    same time)."""
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
