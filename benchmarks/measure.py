"""One measurement = one fresh spawned process, so neither imports, caches nor memory peaks carry over.

A job is a function `job(args: dict, timer: Timer) -> dict` named as "module:function". It does its
setup, wraps exactly the measured call in `with timer:`, and returns facts about the result (rows,
...). The child reports the timed wall time, its RSS just before the timed call and its peak RSS
(`VmHWM`: the whole process, imports and setup included). The parent kills the child on a
timeout or when its RSS passes a cap, and records that instead of a time.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import resource
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import psutil

_POLL_SEC = 0.2


class Timer:
    """Context manager timing the measured call; remembers the RSS when it starts."""

    def __init__(self):
        self.wall_sec: float | None = None
        self.rss_before_mb: float | None = None
        self.excluded_sec = 0.0  # time inside the timer spent on checks that are not measured (`paused`)

    @contextmanager
    def paused(self):
        """A block inside the timed call that is not measured (e.g. checksumming a baseline's result)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.excluded_sec += time.perf_counter() - started

    def __enter__(self):
        self.rss_before_mb = psutil.Process().memory_info().rss / 2**20
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall_sec = time.perf_counter() - self._t0 - self.excluded_sec
        return False


@dataclass
class Measurement:
    name: str
    status: str  # ok | timeout | memory_cap | error
    wall_sec: float | None = None
    peak_rss_mb: float | None = None  # VmHWM of the child (exact); sampled peak when killed
    wait4_peak_rss_mb: float | None = None  # the child's whole life, from the kernel (`os.wait4`), after-checks included
    rss_before_mb: float | None = None  # RSS just before the timed call (imports + inputs)
    elapsed_sec: float | None = None  # child lifetime, as seen by the parent
    load_1m: tuple[float, float] | None = None  # 1-minute load average at start and end (other work on the machine)
    info: dict = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def peak_rss_mb() -> float:
    """This process image's peak RSS: `VmHWM` (Linux). Not `ru_maxrss`: Linux carries a process's pre-exec peak
    into it, so a child spawned (fork + exec) by a large parent would report at least the parent's RSS."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(conn, target: str, args: dict) -> None:
    try:
        module, _, name = target.partition(":")
        job = getattr(importlib.import_module(module), name)
        timer = Timer()
        info = job(args, timer)
        if timer.wall_sec is None:
            raise RuntimeError(f"job {target} never entered its timer")
        peak_mb = peak_rss_mb()
        conn.send({"status": "ok", "wall_sec": timer.wall_sec, "rss_before_mb": timer.rss_before_mb,
                   "peak_rss_mb": peak_mb, "info": info or {}})
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which records it
        conn.send({"status": "error", "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"})
    finally:
        conn.close()


def measure(name: str, target: str, args: dict, *, timeout_sec: float, mem_cap_mb: float) -> Measurement:
    """Run job `target` with `args` in a fresh spawned process and measure it."""
    load_start = os.getloadavg()[0]
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child_conn, target, args), name=f"bench-{name}")
    started = time.perf_counter()
    proc.start()
    child_conn.close()
    watched = psutil.Process(proc.pid)
    sampled_peak = 0.0
    reply, killed = None, None
    while True:
        if parent_conn.poll(_POLL_SEC):
            try:
                reply = parent_conn.recv()
            except EOFError:
                reply = None
            break
        try:
            sampled_peak = max(sampled_peak, watched.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            pass
        if not proc.is_alive():
            break
        if time.perf_counter() - started > timeout_sec:
            killed = "timeout"
        elif sampled_peak > mem_cap_mb:
            killed = "memory_cap"
        if killed:
            proc.kill()
            break
    wait4_peak = None
    try:  # reap the child ourselves: wait4 returns its rusage (ru_maxrss in KiB), which join() would discard
        _, _, usage = os.wait4(proc.pid, 0)
        wait4_peak = round(usage.ru_maxrss / 1024, 1)
    except ChildProcessError:  # already reaped
        pass
    proc.join()
    elapsed = time.perf_counter() - started
    load = (round(load_start, 2), round(os.getloadavg()[0], 2))
    if killed:
        why = (f"killed after {elapsed:.0f}s (timeout {timeout_sec:.0f}s)" if killed == "timeout"
               else f"killed at {sampled_peak:.0f} MB RSS (cap {mem_cap_mb:.0f} MB)")
        return Measurement(name, killed, peak_rss_mb=round(sampled_peak, 1), elapsed_sec=round(elapsed, 2), load_1m=load, error=why)
    if reply is None:
        return Measurement(name, "error", peak_rss_mb=round(sampled_peak, 1), elapsed_sec=round(elapsed, 2),
                           load_1m=load, error=f"child exited with code {proc.exitcode} without a result")
    if reply["status"] != "ok":
        return Measurement(name, "error", elapsed_sec=round(elapsed, 2), load_1m=load, error=reply["error"])
    return Measurement(
        name, "ok", wall_sec=round(reply["wall_sec"], 4), peak_rss_mb=round(reply["peak_rss_mb"], 1),
        wait4_peak_rss_mb=wait4_peak,
        rss_before_mb=round(reply["rss_before_mb"], 1), elapsed_sec=round(elapsed, 2), load_1m=load, info=reply["info"],
    )
