"""The HTTP feature server under load: `feature-platform serve` beside the in-process API and raw Redis.

Yesterday's partition of `user_activity` (the server reads with the real clock, so the partition must
be within the view's 7-day TTL) is materialized through Dagster on the services profile; its offline
rows are the expected answers. The real server is started with the CLI in a subprocess
(`python -m feature_platform.cli serve --port P --workers W`, the platform's settings as environment)
and used once GET /health answers 200. Then, with the spawned client processes of
benchmarks/online_load.py:

- **closed loop** (the online_load shape: processes x threads, no think time, fixed duration, 1 or 100
  uniformly random ids per request): raw redis-py, the in-process `online_features` and
  POST /get-online-features, in the same processes one after the other, every response checked;
- **open loop** (fixed offered rates, each for a few seconds, requests sent on schedule whether or
  not earlier ones returned): the highest rate sustained (achieved >= 95% of offered) with zero errors.
  Latency is measured from each request's scheduled time, so queueing behind a slow server counts.

The HTTP client is stdlib `http.client`, one keep-alive connection per thread, without `requests`'
layers: the clients share the 2-core machine with the server. Client CPU (the clients' processes) and server
CPU (the server's process tree, sampled) are reported per scenario, so the bottleneck is visible.
Errors = exceptions (transport errors and non-200 responses, counted apart) + wrong answers (values,
entity ids, or a status other than PRESENT for a stored entity and NOT_FOUND for an absent one).
The test (`feature_platform_tests/test_http_serving_load.py`) runs this same code, briefly.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from benchmarks import online_load
from benchmarks.online_load import ERROR_SAMPLES, VIEW, Expected, check
from benchmarks.report import environment, environment_markdown

NAME = "http_serving"
PG_DB = "fp_bench_http_serving"
PATH = "/get-online-features"
IDLE_RECONNECT_SEC = 2.0  # below uvicorn's 5 s keep-alive timeout: never send on a connection it may be closing
SUSTAINED = 0.95  # achieved / offered for a rate to count as sustained
RATES = {1: (50, 100, 200, 300, 400, 500, 600, 800, 1000, 1300, 1600, 2000, 2500, 3200),
         100: (10, 20, 40, 60, 80, 100, 130, 160, 200, 250, 320, 400)}
CLOSED = (("raw", 1), ("platform", 1), ("http", 1), ("raw", 100), ("platform", 100), ("http", 100))


# --- the HTTP path ------------------------------------------------------------------------------------
class HttpStatusError(Exception):
    """A non-200 answer (counted apart from transport errors by online_load's client loop)."""

    def __init__(self, status: int, body: bytes):
        self.http_status = status
        super().__init__(f"HTTP {status} from POST {PATH}: {body[:300].decode(errors='replace')}")


class HttpReader:
    """POST /get-online-features for a list of user ids; one keep-alive connection per thread.

    Returns (values, ids) in online_load's shape: one tuple of the features' values per requested id,
    and the response's entity column. A status that contradicts the expected rows replaces its value
    with a marker, so `check` reports it naming the column and row."""

    def __init__(self, expected: Expected, url: str, token: str | None = None, timeout: float = 30):
        parts = urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.expected, self.features = expected, expected.features
        self.refs = [f"{VIEW}:{f}" for f in expected.features]
        self.headers = {"Content-Type": "application/json"}
        if token:  # when the server is configured with tokens
            self.headers["Authorization"] = f"Bearer {token}"
        self.absent = (None,) * len(expected.features)
        self._local = threading.local()

    def prepare(self) -> None:
        self._connection()

    def _connection(self) -> http.client.HTTPConnection:
        local, now = self._local, time.monotonic()
        conn = getattr(local, "conn", None)
        if conn is not None and now - local.used > IDLE_RECONNECT_SEC:
            conn.close()
            conn = None
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            conn.connect()
        local.used = now
        return conn

    def __call__(self, users: list[int]):
        body = json.dumps({"features": self.refs, "entities": {"user_id": users}}).encode()
        conn = self._connection()
        try:
            conn.request("POST", PATH, body, self.headers)
            response = conn.getresponse()
            data = response.read()
        except Exception:
            conn.close()
            self._local.conn = None
            raise
        self._local.used = time.monotonic()
        if response.status != 200:
            raise HttpStatusError(response.status, data)
        return self.parse(json.loads(data), users)

    def parse(self, doc: dict, users: list[int]):
        by_name = dict(zip(doc["metadata"]["feature_names"], doc["results"]))
        rows = self.expected.rows
        want = ["NOT_FOUND" if rows[u] == self.absent else "PRESENT" for u in users]
        columns = []
        for f in self.features:
            result = by_name[f]
            values = result["values"]
            if result["statuses"] != want:
                values = [v if s == w else f"<status {s}, expected {w}>"
                          for v, s, w in zip(values, result["statuses"], want)]
            columns.append(values)
        return list(zip(*columns)), by_name["user_id"]["values"]


def load_fns(platform, expected: Expected, now, *, url: str, token: str | None = None, wait_sec: float = 0) -> dict:
    """online_load's paths plus `http` (its `factory`, bound with functools.partial). With `wait_sec`, first
    waits for the server's GET /health to be 200 (the clients start up while the server does)."""
    wait_healthy(url, wait_sec)
    return {**online_load._request_fns(platform, expected, now), "http": HttpReader(expected, url, token)}


def wait_healthy(url: str, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while _health(url) != 200:
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the feature server at {url} did not become healthy within {timeout:g}s")
        time.sleep(0.25)


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    workers: int
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def cli_server(settings, workers: int = 1, *, log_path: Path, timeout: float = 180, wait: bool = True,
               extra_env: dict | None = None):
    """`python -m feature_platform.cli serve` in its own session; yields a Server once GET /health is 200
    (at once with `wait=False`: the caller waits), then SIGINT (uvicorn's graceful stop), and SIGKILL to
    its process group if it does not exit."""
    port = free_port()
    env = {**os.environ, **settings.as_env(), **(extra_env or {})}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "feature_platform.cli", "serve", "--port", str(port),
                                 "--workers", str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc.pid, workers, log_path)
    try:
        if wait:
            try:
                wait_healthy(server.url, timeout, alive=lambda: proc.poll() is None)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc} (workers={workers}, exit code {proc.poll()}); its log ends:\n"
                                   f"{server.log_tail()}") from None
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is the server and its workers
                proc.wait()


def _health(url: str) -> int | None:
    parts = urlsplit(url)
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.request("GET", "/health")
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


# --- CPU of the server and the machine ---------------------------------------------------------------
class CpuSampler:
    """Samples the CPU time of a process tree (per process), of Redis (INFO cpu, when given a client) and
    of the whole machine every `interval` seconds on a thread; `usage(t0, t1)` gives the CPU used between
    two wall-clock times. What is left of the machine's busy time is other work on the machine."""

    def __init__(self, pid: int, interval: float = 0.1, redis_client=None):
        import psutil

        self._psutil, self.interval, self.redis = psutil, interval, redis_client
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, dict, float]] = []
        self._stop = threading.Event()
        self._tree, self._tree_at = [self.root], 0.0

    def __enter__(self):
        self.samples.append(self._sample())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False

    def _run(self):
        while not self._stop.wait(self.interval):
            self.samples.append(self._sample())

    def _sample(self):
        ps, now = self._psutil, time.time()
        if now - self._tree_at > 1:  # the tree is fixed after start-up; listing it is the costly part
            try:
                self._tree, self._tree_at = [self.root, *self.root.children(recursive=True)], now
            except ps.NoSuchProcess:
                pass
        per = {}
        for p in self._tree:
            try:
                c = p.cpu_times()
                per[p.pid] = c.user + c.system
            except ps.NoSuchProcess:
                pass
        if self.redis is not None:
            info = self.redis.info("cpu")
            per["redis"] = info["used_cpu_user"] + info["used_cpu_sys"]
        m = ps.cpu_times()
        return now, per, m.user + m.nice + m.system + getattr(m, "irq", 0) + getattr(m, "softirq", 0) + getattr(m, "steal", 0)

    def usage(self, t0: float, t1: float) -> dict:
        before = max((s for s in self.samples if s[0] <= t0), key=lambda s: s[0], default=self.samples[0])
        after = min((s for s in self.samples if s[0] >= t1), key=lambda s: s[0], default=self.samples[-1])
        dt = max(after[0] - before[0], 1e-9)
        delta = {p: after[1][p] - before[1][p] for p in after[1] if p in before[1]}
        redis_sec = delta.pop("redis", None)
        per = sorted((round(v, 3) for v in delta.values()), reverse=True)
        server = sum(per)
        return {"server_cpu_sec": round(server, 3), "server_cores": round(server / dt, 3),
                "server_cpu_sec_per_process": [c for c in per if c > 0.005],
                "redis_cores": None if redis_sec is None else round(redis_sec / dt, 3),
                "machine_busy_cores": round((after[2] - before[2]) / dt, 3)}


def _other_cores(s: dict, client_cores: float) -> float | None:
    """The machine's busy cores not used by the server, Redis or the load's clients: other work."""
    if s.get("redis_cores") is None:
        return None
    return round(s["machine_busy_cores"] - s["server_cores"] - s["redis_cores"] - client_cores, 3)


# --- open loop: fixed offered rates ------------------------------------------------------------------
def _open_loop(fn, expected: Expected, entities: int, max_id: int, start: float, interval: float, end: float,
               seed, out: dict) -> None:
    """Send at start, start + interval, ... until `end` (wall clock), late or not; latency from the schedule."""
    rng = np.random.default_rng(seed)
    lat, service, errors = [], [], []
    wrong = exceptions = non_200 = in_window = unsent = checked = 0
    fn.prepare()
    k = 0
    while True:
        due = start + k * interval
        if due >= end:
            break
        now = time.time()
        if now >= end:  # too far behind: the rest of the schedule was never sent
            unsent += int(np.ceil((end - due) / interval))
            break
        if due > now:
            time.sleep(due - now)
        k += 1
        users = rng.integers(1, max_id + 1, entities).tolist()
        sent = time.time()
        try:
            got, ids = fn(users)
        except Exception as exc:  # noqa: BLE001 - counted and sampled
            exceptions += 1
            non_200 += getattr(exc, "http_status", None) is not None
            if len(errors) < ERROR_SAMPLES:
                errors.append(f"http: {type(exc).__name__}: {exc}")
            got = None
        done = time.time()
        lat.append(done - due)
        service.append(done - sent)
        in_window += done <= end
        if got is not None:
            checked += 1
            why = check(expected, "http", users, got, ids)
            if why is not None:
                wrong += 1
                if len(errors) < ERROR_SAMPLES:
                    errors.append(why)
    out.update(lat=lat, service=service, errors=errors, wrong=wrong, exceptions=exceptions, non_200=non_200,
               in_window=in_window, unsent=unsent, checked=checked, sent=k)


def _open_worker(index: int, expected: Expected, url: str, token, threads: int, clients: int, max_id: int,
                 seed: int, commands, results) -> None:
    """One client process: `threads` open-loop senders per step, steps as the parent commands them."""
    try:
        fn = HttpReader(expected, url, token)
        fn([1])
        results.put(("ready", index, None, None))
        while (cmd := commands.get()) is not None:
            step, rate, entities, start, seconds = cmd
            interval = clients / rate  # each of the `clients` senders sends rate / clients per second
            cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
            outs = [{} for _ in range(threads)]
            pool = [threading.Thread(target=_open_loop, daemon=True,
                                     args=(fn, expected, entities, max_id,
                                           start + (index * threads + t) * interval / clients,  # interleaved
                                           interval, start + seconds, [seed, index, t, step], outs[t]))
                    for t in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            results.put(("ok", index, step, {
                "cpu_sec": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0,
                "lat": np.concatenate([np.asarray(o["lat"], dtype="float64") for o in outs]),
                "service": np.concatenate([np.asarray(o["service"], dtype="float64") for o in outs]),
                **{k: sum(o[k] for o in outs) for k in ("wrong", "exceptions", "non_200", "in_window", "unsent",
                                                        "checked", "sent")},
                "errors": [e for o in outs for e in o["errors"]][:ERROR_SAMPLES],
            }))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the run with it
        results.put(("error", index, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"))


def step_load(expected: Expected, url: str, *, ladders: dict, seconds: float, processes: int = 2, threads: int = 8,
              max_id: int | None = None, token: str | None = None, sampler: CpuSampler | None = None,
              stop_after_miss: bool = True, refine: bool = True, seed: int = 5, log=print) -> dict:
    """For each entities count in `ladders` ({entities: rates}), offer each rate (requests/s) for `seconds`,
    in order, until the first rate not sustained with zero errors (then, with `refine`, once the rate
    halfway between it and the last one sustained, and stop); returns per entities count
    every step and the highest sustained rate. One pool of client processes serves all ladders."""
    max_id = max_id or len(expected.rows) - 1
    clients = processes * threads
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    commands = [ctx.Queue() for _ in range(processes)]
    workers = [ctx.Process(target=_open_worker, name=f"http-open-loop-{i}", daemon=True,
                           args=(i, expected, url, token, threads, clients, max_id, seed, commands[i], results))
               for i in range(processes)]
    for w in workers:
        w.start()

    def collect(kind):
        parts, deadline = [], time.monotonic() + 300 + 3 * seconds
        while len(parts) < processes:
            try:
                status, index, _step, payload = results.get(timeout=1)
            except queue.Empty:
                dead = [w.name for w in workers if w.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"http open loop: workers {dead} died" if dead else
                                       f"http open loop: no {kind} in time") from None
                continue
            if status == "error":
                raise RuntimeError(f"http open loop: worker {index} failed: {payload}")
            parts.append(payload)
        return parts

    out, step = {}, 0
    try:
        collect("start-up")
        for entities, rates in ladders.items():
            steps = out.setdefault(entities, [])
            todo, passed, bisect = list(rates), None, refine
            while todo:
                rate = todo.pop(0)
                start = time.time() + 0.3
                for q in commands:
                    q.put((step, rate, entities, start, seconds))
                parts = collect(f"result of step {step}")
                step += 1
                s = _summarize_step(rate, entities, seconds, parts)
                if sampler is not None:
                    time.sleep(2 * sampler.interval)  # a sample after the step's end
                    s |= sampler.usage(start, start + seconds)
                    s["other_cores"] = _other_cores(s, s["client_cores"])
                steps.append(s)
                log(f"http_serving: {entities} entities, offered {rate}/s: achieved {s['achieved_per_sec']:,.0f}/s, "
                    f"errors {s['errors']}, p99 {s['p99_ms']} ms, server {s.get('server_cores')} cores, "
                    f"client {s['client_cores']} cores{'' if s['sustained'] else ' (not sustained)'}")
                if s["sustained"]:
                    passed = rate
                elif stop_after_miss:
                    # once between the last rate sustained and this one, then stop (a finer maximum)
                    mid = int(round((passed + rate) / 2 / 10) * 10) if passed else None
                    todo = [mid] if bisect and mid and passed < mid < rate else []
                    bisect = False
                time.sleep(0.3)
    finally:
        for q in commands:
            q.put(None)
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
                w.join()
    return {str(n): _ladder(n, steps, seconds, processes, threads) for n, steps in out.items()}


def _ladder(entities: int, steps: list[dict], seconds: float, processes: int, threads: int) -> dict:
    best = max((s for s in steps if s["sustained"]), key=lambda s: s["offered_per_sec"], default=None)
    return {"entities_per_request": entities, "seconds_per_step": seconds, "processes": processes,
            "threads": threads, "clients": processes * threads, "steps": steps,
            "max_sustained_per_sec": best["offered_per_sec"] if best else None,
            "max_sustained_achieved_per_sec": best["achieved_per_sec"] if best else None,
            "max_sustained_p99_ms": best["p99_ms"] if best else None,
            "first_not_sustained": next((s["offered_per_sec"] for s in steps if not s["sustained"]), None)}


def _summarize_step(rate: float, entities: int, seconds: float, parts: list[dict]) -> dict:
    lat = np.concatenate([p["lat"] for p in parts]) * 1000
    service = np.concatenate([p["service"] for p in parts]) * 1000
    total = {k: sum(p[k] for p in parts) for k in ("wrong", "exceptions", "non_200", "in_window", "unsent",
                                                   "checked", "sent")}
    errors = total["wrong"] + total["exceptions"]
    achieved = total["in_window"] / seconds

    def pct(a, q):
        return round(float(np.percentile(a, q)), 3) if len(a) else None

    return {"offered_per_sec": rate, "entities_per_request": entities, "sent": total["sent"],
            "achieved_per_sec": round(achieved, 1), "achieved_ratio": round(achieved / rate, 3),
            "unsent": total["unsent"], "errors": errors, "wrong_answers": total["wrong"],
            "exceptions": total["exceptions"], "non_200": total["non_200"], "responses_checked": total["checked"],
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "p999_ms": pct(lat, 99.9),
            "max_ms": round(float(lat.max()), 3) if len(lat) else None,
            "service_p50_ms": pct(service, 50), "service_p99_ms": pct(service, 99),
            "client_cores": round(sum(p["cpu_sec"] for p in parts) / seconds, 3),
            "sustained": errors == 0 and achieved >= SUSTAINED * rate,
            "error_samples": [e for p in parts for e in p["errors"]][:ERROR_SAMPLES]}


# --- the benchmark ------------------------------------------------------------------------------------
def ensure_sessions(users: int, day: date, seed: int, log=print) -> tuple[Path, int]:
    """The seeded sessions log of `day` and the 8 days before it, one Parquet file per day (written once)."""
    import pyarrow.parquet as pq

    from benchmarks.data import DATA_ROOT
    from feature_platform.demo.generator import write_day

    path = DATA_ROOT / f"sessions-users{users}-end{day.isoformat()}-seed{seed}"
    marker = path.with_name(path.name + ".complete")
    if marker.exists():
        return path, int(marker.read_text())
    log(f"http_serving: writing the sessions log of {users:,} users for the 9 days ending {day}")
    total = sum(pq.read_metadata(write_day(path, day - timedelta(days=i), users, seed)).num_rows for i in range(9))
    marker.write_text(str(total))
    return path, total


def _settings(home: Path, sessions: Path, day: date):
    from feature_platform.config import Settings

    return Settings.from_env({
        "FEATURE_PLATFORM_PROFILE": "services", "FEATURE_PLATFORM_HOME": str(home),
        "FEATURE_PLATFORM_SESSIONS_PATH": str(sessions), "FEATURE_PLATFORM_PARTITIONS_START": day.isoformat(),
        "FEATURE_PLATFORM_PG_DB": PG_DB, "FEATURE_PLATFORM_DAGSTER_PG_DB": PG_DB + "_dagster",
        "FEATURE_PLATFORM_REDIS_DB": str(online_load.BENCH_REDIS_DB),
    })


def _redis(settings):
    import redis

    return redis.Redis(host=settings.redis_host, port=settings.redis_port, password=settings.redis_password or None)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"load average {os.getloadavg()}"


def serve_and_load(settings, expected: Expected, *, workers: int, closed, seconds: float, step_seconds: float,
                   rates: dict, processes: int = 2, threads: int = 4, open_threads: int = 8, max_id: int | None = None,
                   token: str | None = None, log_dir: Path, seed: int = 3, log=print) -> dict:
    """One server configuration: start it with the CLI, run the closed-loop scenarios `closed`, then the
    open-loop steps for each entities count in `rates`."""
    with cli_server(settings, workers, log_path=log_dir / f"serve-workers{workers}.log", wait=False) as server, \
            CpuSampler(server.pid, redis_client=_redis(settings)) as sampler:
        log(f"http_serving: starting the server ({workers} worker(s)) at {server.url} and the closed loop's "
            f"{processes} x {threads} clients, {seconds:g}s per scenario")
        try:  # the client processes wait for the server's health (both start up at once: imports are slow)
            load = online_load.run_load(settings, expected, now=None, seconds=seconds, processes=processes,
                                        threads=threads, max_id=max_id, scenarios=closed, seed=seed,
                                        factory=partial(load_fns, url=server.url, token=token, wait_sec=180))
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nthe server's log ends:\n{server.log_tail()}") from exc
        time.sleep(2 * sampler.interval)
        for s in load["scenarios"].values():
            if s["path"] == "http":
                s |= sampler.usage(*s["window"])
                s["client_cores"] = round(s["client_cpu_ms_per_request"] * s["requests"] / 1000 / s["elapsed_sec"], 3)
                s["other_cores"] = _other_cores(s, s["client_cores"])
                s["server_cpu_ms_per_request"] = round(1000 * s["server_cpu_sec"] / s["requests"], 4) if s["requests"] else None
        steps = step_load(expected, server.url, ladders=rates, seconds=step_seconds, processes=processes,
                          threads=open_threads, max_id=max_id, token=token, sampler=sampler, seed=seed, log=log)
    return {"workers": workers, "closed_loop": load, "open_loop": steps}


def run(*, users: int, seed: int, seconds: float, step_seconds: float, workers=(1, 2), processes: int = 2,
        threads: int = 4, open_threads: int = 8, token: str | None = None, log=print) -> tuple[dict, str]:
    import shutil

    import pandas as pd  # noqa: F401 - imported before the platform, as everywhere
    from chat_activity.user_activity import SPEC

    from benchmarks.data import DATA_ROOT

    day = datetime.now(timezone.utc).date() - timedelta(days=1)  # within the TTL of the server's real clock
    sessions, n_sessions = ensure_sessions(users, day, seed, log=log)
    home = DATA_ROOT / "http-serving-home"
    shutil.rmtree(home, ignore_errors=True)
    settings = _settings(home, sessions, day)
    online_load._reset(settings)
    results: dict = {"users": users, "partition": day.isoformat(), "sessions": n_sessions,
                     "redis_db": online_load.BENCH_REDIS_DB, "uptime_before": uptime(), "environment": environment()}
    log(f"http_serving: {results['uptime_before']}")
    try:
        log(f"http_serving: materializing {VIEW} {day} for {users:,} users through Dagster (services profile)")
        rows, sec = online_load.materialize(settings, day)
        expected = Expected.from_offline(rows, SPEC.feature_names, users)
        results |= {"materialize_sec": round(sec, 1), "offline_rows": len(rows), "entities_online": expected.present}
        results["servers"] = []
        for i, w in enumerate(workers):
            closed = CLOSED if i == 0 else tuple(s for s in CLOSED if s[0] == "http")  # baselines once, same run
            results["servers"].append(serve_and_load(
                settings, expected, workers=w, closed=closed, seconds=seconds, step_seconds=step_seconds, rates=RATES,
                processes=processes, threads=threads, open_threads=open_threads, max_id=users, token=token,
                log_dir=home / "logs", seed=seed, log=log))
    finally:
        online_load._reset(settings)
        results["uptime_after"] = uptime()
        log(f"http_serving: {results['uptime_after']}")
    ratios(results)
    return results, render(results)


def ratios(results: dict) -> None:
    """HTTP's ratios to raw and to the in-process API (both measured with the first server configuration)."""
    base = results["servers"][0]["closed_loop"]["scenarios"]
    for server in results["servers"]:
        for s in server["closed_loop"]["scenarios"].values():
            if s["path"] != "http" or not s["requests"]:
                continue
            for ref in ("raw", "platform"):
                r = base.get(f"{ref}_{s['entities_per_request']}")
                if r and r["requests"]:
                    s[f"vs_{ref}"] = {"requests_per_sec": round(s["requests_per_sec"] / r["requests_per_sec"], 3),
                                      **{k: round(s[k] / r[k], 3) for k in ("p50_ms", "p99_ms", "p999_ms")}}


def _cores(s: dict) -> str:
    if s.get("server_cores") is None:
        return ""
    return ", ".join("-" if s.get(k) is None else f"{s[k]:.2f}"
                     for k in ("server_cores", "redis_cores", "client_cores", "other_cores"))


def _x(v: dict | None) -> str:
    return f"{v['requests_per_sec']:.2f}x, {v['p50_ms']:.2f}x, {v['p99_ms']:.2f}x, {v['p999_ms']:.2f}x" if v else ""


def render(r: dict) -> str:
    first = r["servers"][0]["closed_loop"]
    lines = [
        f"## Online read over HTTP (`feature-platform serve`, `user_activity`, {r['entities_online']:,} of "
        f"{r['users']:,} ids online, Redis)", "",
        f"Yesterday's partition ({r['partition']}, {r['offline_rows']:,} rows from {r['sessions']:,} sessions; the "
        "server reads with the real clock, so the partition is within the 7-day TTL) materialized through Dagster on "
        f"the services profile ({r['materialize_sec']:.1f} s), its offline rows the expected answers. The server is "
        "`python -m feature_platform.cli serve --workers W` in a subprocess (uvicorn, Feast's FastAPI app over "
        "`PlatformFeatureStore`), used once GET /health is 200. Clients: the online-load benchmark's spawned "
        "processes, stdlib `http.client` with one keep-alive connection per thread; POST /get-online-features with "
        "all six features. Every response is checked: values and types, the entity column, and each status "
        "(PRESENT for a stored id, NOT_FOUND for an absent one); errors = exceptions (non-200 counted apart) + wrong "
        f"answers. 2 cores: the server's workers, the clients and Redis share them. `uptime` before: "
        f"`{r['uptime_before']}`; after: `{r['uptime_after']}`.", "",
        f"**Closed loop** ({first['processes']} processes x {first['threads']} threads, no think time, "
        f"{first['seconds']:g} s per scenario after a warm-up, uniformly random ids in [1, {first['max_id']:,}]; raw and "
        "platform measured once, beside the first server, in the same processes). Latency = the call (for HTTP: "
        "encoding the request, the round trip and decoding the JSON); the check comes after it. CPU: the server's "
        "process tree and the whole machine sampled every 0.1 s, Redis from INFO cpu (all its clients), the "
        "clients from getrusage; other work = the machine's busy cores minus those (the machine is shared).", "",
        "| entities/request | path | requests | requests/s | errors (non-200) | p50 (ms) | p99 (ms) | p99.9 (ms) | "
        "max (ms) | client CPU/request (ms) | server CPU/request (ms) | cores: server, Redis, clients, other work | "
        "vs raw: requests/s, p50, p99, p99.9 | vs platform: requests/s, p50, p99, p99.9 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    rows = []
    for server in r["servers"]:
        for s in server["closed_loop"]["scenarios"].values():
            label = s["path"] if s["path"] != "http" else f"http, {server['workers']} worker{'s' * (server['workers'] > 1)}"
            rows.append((s["entities_per_request"], s["path"] == "http", server["workers"], label, s))
    for n, _, _, label, s in sorted(rows, key=lambda x: x[:3]):
        srv = s.get("server_cpu_ms_per_request")
        lines.append(
            f"| {n} | {label} | {s['requests']:,} | {s['requests_per_sec']:,.0f} | {s['errors']} ({s['non_200']}) | "
            f"{s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {s['p999_ms']:.3f} | {s['max_ms']:.1f} | "
            f"{s['client_cpu_ms_per_request']:.3f} | {'' if srv is None else f'{srv:.3f}'} | {_cores(s)} | "
            f"{_x(s.get('vs_raw'))} | "
            f"{_x(s.get('vs_platform'))} |")
    lines += ["", "**Open loop: maximum sustained rate.** Each offered rate for "
              f"{r['servers'][0]['open_loop']['1']['seconds_per_step']:g} s, requests sent on schedule by "
              f"{r['servers'][0]['open_loop']['1']['clients']} senders (2 processes) whether or not earlier ones "
              f"returned; latency from the scheduled time (queueing included); sustained = achieved >= "
              f"{SUSTAINED:.0%} of offered with zero errors; after the first rate not sustained, one step halfway back "
              "to the last rate sustained, then the ladder stops.", "",
              "| workers | entities/request | offered (req/s) | achieved (req/s) | errors | p50 (ms) | p99 (ms) | "
              "p99.9 (ms) | cores: server, Redis, clients, other work | machine busy (of 2 cores) | sustained |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for server in r["servers"]:
        for ol in server["open_loop"].values():
            for s in ol["steps"]:
                lines.append(
                    f"| {server['workers']} | {s['entities_per_request']} | {s['offered_per_sec']:,} | "
                    f"{s['achieved_per_sec']:,.0f} | {s['errors']} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
                    f"{s['p999_ms']:.2f} | {_cores(s)} | "
                    f"{s.get('machine_busy_cores', 0):.2f} | {'yes' if s['sustained'] else 'no'} |")
    lines += ["", "| workers | entities/request | max sustained (req/s, zero errors) | achieved | its p99 (ms) | "
              "first rate not sustained |", "|---:|---:|---:|---:|---:|---:|"]
    for server in r["servers"]:
        for ol in server["open_loop"].values():
            best = ol["max_sustained_per_sec"]
            lines.append(f"| {server['workers']} | {ol['entities_per_request']} | {best if best else 'none'} | "
                         f"{ol['max_sustained_achieved_per_sec'] or ''} | {ol['max_sustained_p99_ms'] or ''} | "
                         f"{ol['first_not_sustained'] or ''} |")
    closed = [s for server in r["servers"] for s in server["closed_loop"]["scenarios"].values()]
    steps = [s for server in r["servers"] for ol in server["open_loop"].values() for s in ol["steps"]]
    sustained = [s for s in steps if s["sustained"]]
    errors = sum(s["errors"] for s in closed) + sum(s["errors"] for s in sustained)
    checked = sum(s["responses_checked"] for s in closed) + sum(s["responses_checked"] for s in steps)
    beyond = sum(s["errors"] for s in steps if not s["sustained"])
    lines += ["", f"Checked: {checked:,} responses; errors in the closed loop and the sustained steps: {errors}; in the "
              f"steps beyond capacity (not sustained): {beyond}.", ""]
    samples = [e for s in closed + steps for e in s["error_samples"]]
    if samples:
        lines += ["Error samples:", *[f"- {e}" for e in samples[:10]], ""]
    lines += ["| target | value | PASS/MISS |", "|---|---:|---|",
              f"| zero errors over HTTP under load (closed loop and every sustained rate) | {errors} | "
              f"{'PASS' if errors == 0 else 'MISS'} |", ""]
    lines.append(environment_markdown(r["environment"]))
    return "\n".join(lines) + "\n"
