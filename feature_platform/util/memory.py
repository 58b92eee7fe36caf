"""Give the memory a finished chunk of work freed back to the operating system.

numpy and pandas allocate through glibc's malloc, Arrow through its own pool (mimalloc or jemalloc); both keep
freed pages for reuse, so after a chunk of a range run the process holds the chunk's peak whether or not the
next chunk needs it, and Arrow's pool and malloc cannot reuse each other's pages. `release_unused` returns them
(Arrow's `release_unused`, glibc's `malloc_trim`); elsewhere (another libc) it does what it can.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def release_unused() -> None:
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)
