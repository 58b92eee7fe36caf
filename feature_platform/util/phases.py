"""Where a run's time goes: seconds per named step (read, aggregate, validate, ...), summed per process.

Steps are not nested within a thread: each `phase` adds its wall time to its name, and the growth of the process's
peak RSS while it ran (so the step that set the peak is known; with two threads, both steps running then). A range
run computing ahead (`Runtime.compute_chunks`) runs `read` and `aggregate` on its compute thread, beside the run's
`validate`, writes and `checks`, and counts the run's waits for a chunk as `wait_compute`. The backfill benchmark
reads `snapshot()` before and after each run; what no step of the run's own thread covers is Dagster's own work
(run and event storage).
"""

from __future__ import annotations

import resource
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

_seconds: defaultdict[str, float] = defaultdict(float)
_peak_growth_mb: defaultdict[str, float] = defaultdict(float)
_lock = threading.Lock()  # steps of two threads may end at once


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextmanager
def phase(name: str) -> Iterator[None]:
    started, peak = time.perf_counter(), _peak_mb()
    try:
        yield
    finally:
        elapsed, grown = time.perf_counter() - started, _peak_mb() - peak
        with _lock:
            _seconds[name] += elapsed
            if grown > 0:
                _peak_growth_mb[name] += grown


def snapshot() -> dict[str, dict[str, float]]:
    """{"seconds": {step: total}, "peak_growth_mb": {step: total}} so far in this process."""
    with _lock:
        return {"seconds": dict(_seconds), "peak_growth_mb": dict(_peak_growth_mb)}
