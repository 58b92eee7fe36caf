"""Push-stream benchmark: call-to-online latency and loss for `user_realtime`, beside stock Feast `push` and a floor.

Per-call paths, 1 and 100 rows per call, each run in a fresh process, `repeat` interleaved rounds (the order
rotated each round), the load average beside each run:
- Feast `FeatureStore.push(..., to=ONLINE)` with a stock Redis online store config (the baseline; no
  validation, no offline log);
- one pipelined `HSET` per row of values encoded before the clock starts (the floor);
- the platform's low-latency path `push(direct=True)`: validation, dedupe, the direct-log append for the
  offline store and the newest-wins online write with its watermark, all inside the call; on the services
  profile (Redis) and the embedded one (SQLite), with a DataFrame and with a list of dicts; checked after each
  run (untimed): every call accepted its rows, the direct log holds one entry per call, the last values are online.
Services runs use Redis database FEATURE_PLATFORM_BENCH_REDIS_DB (default 9; flushed per run) and the PostgreSQL
database `fp_bench_push`.
Once each: sustained load, a producer at `rate` events/s in 100 ms batches on the low-latency path for
`seconds` (latency = write completion minus the event's creation; the direct log is then drained and every
sent event counted offline: lost = sent - stored); the embedded sensor path, in-process: batches landed every
second, the sensor's tick every 5 s, each pending batch ingested by its Dagster run.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.measure import Timer, measure
from benchmarks.report import environment, environment_markdown

NAME = "push"
SOURCE = "user_realtime_events"


BENCH_REDIS_DB = int(os.environ.get("FEATURE_PLATFORM_BENCH_REDIS_DB", "9"))  # flushed per job


def _platform(home: str, services: bool = False):
    import warnings

    warnings.filterwarnings("ignore")
    import feature_platform as fp
    from feature_platform.config import Settings

    env = {"FEATURE_PLATFORM_HOME": home}
    if services:
        env |= {"FEATURE_PLATFORM_PROFILE": "services", "FEATURE_PLATFORM_PG_DB": "fp_bench_push",
                "FEATURE_PLATFORM_REDIS_DB": str(BENCH_REDIS_DB)}
    platform = fp.FeaturePlatform(Settings.from_env(env))
    platform.apply()  # creates the database on the services profile
    if services:
        import psycopg
        import redis

        redis.Redis(host=platform.settings.redis_host, port=platform.settings.redis_port, db=BENCH_REDIS_DB).flushdb()
        with psycopg.connect(platform.settings.pg_conninfo(platform.settings.pg_db), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS offline.user_realtime")
    return platform


def _rows(i: int, n: int = 1) -> pd.DataFrame:
    now = pd.Timestamp(datetime.now(timezone.utc))
    users = (np.arange(n) + i * n) % 5000 + 1
    return pd.DataFrame({"user_id": users.astype("int64"), "event_timestamp": [now] * n, "created_timestamp": [now] * n,
                         "current_session_messages": (users % 50).astype("int64"),
                         "current_session_tokens": (users * 7 % 9000).astype("int64"),
                         "last_active_minutes_ago": np.full(n, 0.5, dtype="float32")})


def _one_row(i: int) -> pd.DataFrame:
    return _rows(i, 1)


def _timed(calls: int, fn) -> dict:
    """Percentiles of `fn(i)` over `calls` calls, without the first warm-up calls; also per call the thread's CPU
    time and whether the kernel preempted the thread around the call (an involuntary context switch: on a busy
    machine a preempted call waits for a time slice, milliseconds, whatever the code does)."""
    import gc
    import resource

    gc.collect()
    gc.freeze()  # as a long-lived service does after start-up: no full GC pauses over start-up objects
    lat, cpu, preempted = [], [], []
    usage, thread = resource.getrusage, resource.RUSAGE_THREAD
    for i in range(calls):
        switches, c0 = usage(thread).ru_nivcsw, time.thread_time()
        t0 = time.perf_counter()
        fn(i)
        t1 = time.perf_counter()
        cpu.append(time.thread_time() - c0)
        preempted.append(usage(thread).ru_nivcsw > switches)
        lat.append(t1 - t0)
    skip = min(20, calls // 10)  # the first calls warm connections and caches
    lat, cpu, preempted = lat[skip:], cpu[skip:], preempted[skip:]
    calm = [t for t, p in zip(lat, preempted) if not p]
    out = _percentiles(lat)
    out |= {"cpu_p50_ms": _ms(np.percentile(cpu, 50)), "cpu_p99_ms": _ms(np.percentile(cpu, 99)),
            "preempted_share": round(sum(preempted) / len(preempted), 4),
            "unpreempted_p99_ms": _ms(np.percentile(calm, 99)) if calm else None,
            "unpreempted_max_ms": _ms(max(calm)) if calm else None}
    return out


def _percentiles(values: list[float]) -> dict:
    a = np.array(values) * 1000
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3)}


def _ms(seconds: float) -> float:
    return round(float(seconds) * 1000, 3)


def job_feast_push(args: dict, timer: Timer) -> dict:
    from feast import FeatureStore, RepoConfig
    from feast.data_source import PushMode
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    platform = _platform(args["home"], services=True)
    ours = platform.runtime.feast.config
    store = FeatureStore(config=RepoConfig(  # Feast's default Redis settings (newest-wins by reading first)
        project=ours.project, provider=ours.provider, registry=ours.registry_config, offline_store=ours.offline_config,
        online_store=RedisOnlineStoreConfig(connection_string=ours.online_store.connection_string),
        entity_key_serialization_version=ours.entity_key_serialization_version))
    n = args["rows"]
    frames = [_rows(i, n) for i in range(args["events"])]
    with timer:
        out = _timed(args["events"], lambda i: store.push(SOURCE, frames[i], to=PushMode.ONLINE))
    return out


def job_raw_hset(args: dict, timer: Timer) -> dict:
    """The floor: one pipelined HSET per row of values encoded before the clock starts."""
    from chat_activity.user_realtime import SPEC

    from feature_platform.feast_format import codec as fmt

    platform = _platform(args["home"], services=True)
    client = platform.runtime.online.features.client
    n = args["rows"]
    view = SPEC.name
    fields = [fmt.timestamp_field(view), *(fmt.field_key(view, f) for f in SPEC.feature_names)]
    encoded = []
    for i in range(args["events"]):
        rows = _rows(i, n)
        keys = fmt.entity_keys("user_id", "int64", rows["user_id"], platform.runtime.feast.config.project)
        cells = [fmt.encode_timestamps(rows["event_timestamp"]),
                 *(fmt.encode_values(rows[f.name], f.dtype) for f in SPEC.fields)]
        encoded.append([(k, dict(zip(fields, vals))) for k, *vals in zip(keys, *cells)])

    def write(i):
        with client.pipeline(transaction=False) as pipe:
            for key, mapping in encoded[i]:
                pipe.hset(key, mapping=mapping)
            pipe.execute()

    with timer:
        out = _timed(args["events"], write)
    return out


def job_direct(args: dict, timer: Timer) -> dict:
    """The platform's low-latency path on one profile (`services`: Redis; else embedded: SQLite), with DataFrame
    or list-of-dicts input (`dicts`); afterwards (untimed) every call's result, the direct log and the online
    values of the last call are checked."""
    from chat_activity.user_realtime import SPEC

    from feature_platform.ingest import transport_for

    platform = _platform(args["home"], services=args.get("services", True))
    n = args["rows"]
    frames = [_rows(i, n) for i in range(args["events"])]
    batches = [f.to_dict("records") for f in frames] if args.get("dicts") else frames
    results = []
    with timer:
        out = _timed(args["events"], lambda i: results.append(platform.push(SOURCE, batches[i], direct=True)))
    bad = [r for r in results if (r.accepted, r.rejected) != (n, 0)]
    logged = len(transport_for(platform.runtime, SPEC, direct_log=True).pending())
    last = frames[-1]
    got = platform.online_features([f"user_realtime:{f}" for f in SPEC.feature_names],
                                   [{"user_id": int(u)} for u in last["user_id"]])
    values_ok = all((got[f].to_numpy(dtype="float64") == last[f].to_numpy(dtype="float64")).all() for f in SPEC.feature_names)
    out["check"] = "ok" if not bad and logged == len(results) and values_ok else \
        f"FAILED: {len(bad)} calls not fully accepted, {logged} of {len(results)} logged, online values equal: {values_ok}"
    return out


def job_direct_one_row(args: dict, timer: Timer) -> dict:
    """Embedded profile (SQLite online store and direct log): `job_direct` on the embedded profile."""
    return job_direct({**args, "services": False, "rows": args.get("rows", 1)}, timer)


def _producer(rate: int, seconds: float, interval: float, on_batch) -> int:
    """Emit `rate` events/s in batches every `interval` s; returns the distinct (user, time) events sent
    (a user repeated within one batch at the same instant is one event: the platform dedupes it)."""
    from feature_platform.demo.stream import SessionSimulator

    sim = SessionSimulator(n_users=20_000, seed=3)
    per_batch, sent, start = max(1, round(rate * interval)), 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tick = time.perf_counter()
        batch = sim.events(per_batch)
        batch["event_timestamp"] = pd.Timestamp(datetime.now(timezone.utc))
        on_batch(batch)
        sent += batch["user_id"].nunique()
        time.sleep(max(0.0, tick + interval - time.perf_counter()))
    return sent


def job_direct_sustained(args: dict, timer: Timer) -> dict:
    platform = _platform(args["home"], services=True)
    lat: list[float] = []

    def write(batch: pd.DataFrame) -> None:
        created = batch["event_timestamp"].iloc[0]
        platform.push(SOURCE, batch, direct=True)
        done = pd.Timestamp(datetime.now(timezone.utc))
        lat.extend([(done - created).total_seconds()] * len(batch))

    with timer:
        sent = _producer(args["rate"], args["seconds"], 0.1, write)
    drained = platform.ingest_pending(SOURCE)  # what the sensor does every tick
    stored = len(platform.offline_table("user_realtime"))
    return {**_percentiles(lat), "sent": sent, "stored_offline": stored, "lost": sent - stored,
            "events_per_sec": round(sent / args["seconds"], 1), "drain_runs": len(drained)}


def job_sensor_path(args: dict, timer: Timer) -> dict:
    """Producer thread lands batches; every 5 s the sensor is evaluated and its runs executed in-process."""
    import threading

    import dagster as dg

    from feature_platform.definitions import build_definitions
    from feature_platform.defs.resources import resources_for

    platform = _platform(args["home"])
    settings = platform.settings
    sensor = build_definitions(settings).get_sensor_def(f"{SOURCE}_sensor")
    created: dict[str, pd.Timestamp] = {}
    lat: list[float] = []
    stop = threading.Event()

    def land(batch: pd.DataFrame) -> None:
        created[platform.push(SOURCE, batch)] = (batch["event_timestamp"].iloc[0], len(batch))

    def produce():
        args_sent[0] = _producer(args["rate"], args["seconds"], 1.0, land)  # producers batch by the second here
        stop.set()

    args_sent = [0]
    with timer:
        producer = threading.Thread(target=produce)
        producer.start()
        instance = platform.instance()
        cursor = None
        while True:
            tick = time.perf_counter()
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources_for(settings))
            result = sensor(ctx)
            if isinstance(result, dg.SensorResult):
                for request in result.dynamic_partitions_requests or []:
                    instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
                keys = [r.partition_key for r in result.run_requests]
                for key in keys:
                    platform._runs.run([dg.AssetKey("user_realtime")], key, "user_realtime",
                                       log_level=platform.console_log_level)
                    done = pd.Timestamp(datetime.now(timezone.utc))
                    ts, n = created[key]
                    lat.extend([(done - ts).total_seconds()] * n)
            elif stop.is_set():
                break
            time.sleep(max(0.0, tick + 5.0 - time.perf_counter()))
        producer.join()
    stored = len(platform.offline_table("user_realtime"))
    sent = args_sent[0]
    return {**_percentiles(lat), "sent": sent, "stored_offline": stored, "lost": sent - stored,
            "events_per_sec": round(sent / args["seconds"], 1)}


# Per-call paths, run in this order (rotated each repeat), each in a fresh process: (key, job, arguments).
PER_CALL = [
    ("feast_push", "job_feast_push", {}),
    ("raw_hset", "job_raw_hset", {}),
    ("direct_redis", "job_direct", {"services": True}),
    ("direct_redis_dicts", "job_direct", {"services": True, "dicts": True}),
    ("direct_sqlite", "job_direct", {"services": False}),
    ("direct_sqlite_dicts", "job_direct", {"services": False, "dicts": True}),
]
LABELS = {
    "feast_push": "Feast `push` to online (stock Redis config; no validation, no offline log)",
    "raw_hset": "pipelined HSET of values encoded before the clock (floor)",
    "direct_redis": "platform `push(direct=True)`, DataFrame, services (Redis)",
    "direct_redis_dicts": "platform `push(direct=True)`, list of dicts, services (Redis)",
    "direct_sqlite": "platform `push(direct=True)`, DataFrame, embedded (SQLite)",
    "direct_sqlite_dicts": "platform `push(direct=True)`, list of dicts, embedded (SQLite)",
}
SIZES = (1, 100)


def run(*, rate: int, seconds: float, single_events: int, mem_cap_mb: float, log, repeat: int = 3) -> tuple[dict, str]:
    results: dict = {"rate": rate, "seconds": seconds, "single_events": single_events, "repeat": repeat,
                     "redis_db": BENCH_REDIS_DB, "environment": environment(), "per_call": {}}
    calls = {1: single_events, 100: max(50, single_events // 5)}
    for r in range(repeat):  # interleaved: every path once per round, the order rotated each round
        for rows in SIZES:
            order = PER_CALL[r % len(PER_CALL):] + PER_CALL[:r % len(PER_CALL)]
            for key, job, extra in order:
                name = f"{key}_{rows}"
                with tempfile.TemporaryDirectory(prefix=f"bench-push-{name}-") as home:
                    log(f"push: {name} (round {r + 1} of {repeat})")
                    m = measure(name, f"benchmarks.push:{job}", {"home": str(Path(home)), "events": calls[rows],
                                                                  "rows": rows, **extra},
                                timeout_sec=600, mem_cap_mb=mem_cap_mb)
                results["per_call"].setdefault(name, []).append(m.as_dict())
    for key, job, extra in [("direct_sustained", "job_direct_sustained", {"rate": rate, "seconds": seconds}),
                            ("sensor_path", "job_sensor_path", {"rate": rate, "seconds": seconds})]:
        with tempfile.TemporaryDirectory(prefix=f"bench-push-{key}-") as home:
            log(f"push: {key}")
            m = measure(key, f"benchmarks.push:{job}", {"home": str(Path(home)), **extra},
                        timeout_sec=seconds * 20 + 600, mem_cap_mb=mem_cap_mb)
            results[key] = m.as_dict()
    results["summary"] = {name: summarize(runs) for name, runs in results["per_call"].items()}
    return results, render(results)


def summarize(runs: list[dict]) -> dict:
    """Min and median over the runs of each per-call figure, the load averages seen, the largest peak RSS."""
    ok = [m for m in runs if m["status"] == "ok"]
    out: dict = {"runs": len(runs), "ok_runs": len(ok), "errors": [m.get("error") for m in runs if m["status"] != "ok"],
                 "checks": [m["info"].get("check", "ok") for m in ok]}
    for figure in ("p50_ms", "p99_ms", "max_ms", "cpu_p50_ms", "cpu_p99_ms", "preempted_share", "unpreempted_p99_ms"):
        values = [m["info"][figure] for m in ok if m["info"].get(figure) is not None]
        out[figure] = {"min": min(values), "median": float(np.median(values))} if values else None
    out["load_1m"] = [m["load_1m"] for m in ok]
    out["peak_rss_mb"] = max((m["peak_rss_mb"] for m in ok), default=None)
    return out


def reading(summary: dict) -> str:
    """What this run's figures say about the 1-row targets: the floor's tail in the same rounds, the calmest round,
    and the code's own cost."""
    def fig(name: str, figure: str, which: str = "median"):
        s = summary.get(name) or {}
        return (s.get(figure) or {}).get(which)

    names = ("raw_hset_1", "direct_redis_1", "direct_redis_dicts_1", "direct_sqlite_1", "direct_sqlite_dicts_1")
    if any(fig(n, "p99_ms") is None or fig(n, "cpu_p99_ms") is None for n in names):
        return "Reading: not every 1-row path ran; see the tables."
    short = ("floor", "Redis with a DataFrame", "Redis with dicts", "SQLite with a DataFrame", "SQLite with dicts")
    best = ", ".join(f"{label} {fig(n, 'p99_ms', 'min'):.3f} ms" for label, n in zip(short, names))
    return (f"Reading (1 row): in the same rounds the floor, a bare pipelined HSET, has a median p99 of "
            f"{fig('raw_hset_1', 'p99_ms'):.3f} ms; a call the kernel preempts, or whose reply waits for redis-server's "
            "turn, or whose write waits for the shared disk, costs milliseconds whatever the code does, so the p99 follows "
            f"the machine's load (see each run's). Lowest p99 over the rounds: {best}. The platform's own work per call "
            f"at p99 (median over the rounds) is {fig('direct_redis_1', 'cpu_p99_ms'):.3f} ms of CPU with a DataFrame and "
            f"{fig('direct_redis_dicts_1', 'cpu_p99_ms'):.3f} ms with a list of dicts on Redis, "
            f"{fig('direct_sqlite_1', 'cpu_p99_ms'):.3f} and {fig('direct_sqlite_dicts_1', 'cpu_p99_ms'):.3f} ms on SQLite. "
            "Whether the targets hold on every run needs a quiet machine (load < 1, or cores of its own).")


def render(r: dict) -> str:
    summary = r["summary"]

    def cell(s: dict | None, figure: str) -> str:
        v = s and s.get(figure)
        return "—" if not v else f"{v['min']:,.3f} / {v['median']:,.3f}"

    def row(name: str, label: str) -> str:
        s = summary.get(name)
        if not s or not s["ok_runs"]:
            return f"| {label} | not run or failed: {(s or {}).get('errors')} | | | | | |"
        loads = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in s["load_1m"])
        checks = "ok" if all(c == "ok" for c in s["checks"]) and s["checks"] else "; ".join(sorted(set(s["checks"]))) or "—"
        return (f"| {label} | {cell(s, 'p50_ms')} | {cell(s, 'p99_ms')} | {cell(s, 'max_ms')} | {loads} | "
                f"{s['peak_rss_mb']:,.0f} | {checks if name.startswith('direct') else '—'} |")

    def once(key: str, label: str) -> str:
        m = r.get(key)
        if not m or m["status"] != "ok":
            return f"| {label} | {(m or {}).get('status', 'not run')} | | | | |"
        i = m["info"]
        return (f"| {label} | {i['p50_ms']:,.2f} | {i['p99_ms']:,.2f} | {i['max_ms']:,.1f} | "
                f"{i['lost']:,} of {i['sent']:,} | {m['load_1m'][0]:.1f}-{m['load_1m'][1]:.1f} | {m['peak_rss_mb']:,.0f} |")

    def p99(name: str) -> float | None:
        s = summary.get(name)
        return s["p99_ms"]["median"] if s and s.get("p99_ms") else None

    def target(label: str, name: str, bound: float) -> str:
        v = p99(name)
        return f"| {label} | {'—' if v is None else f'{v:.3f} ms'} | {'PASS' if v is not None and v < bound else 'MISS'} |"

    sensor = r["sensor_path"]["info"] if r.get("sensor_path", {}).get("status") == "ok" else {}
    sustained = r["direct_sustained"]["info"] if r.get("direct_sustained", {}).get("status") == "ok" else {}
    lines = [
        f"## Push stream: call-to-online latency (`user_realtime`, 1 and 100 rows per call; {r['rate']:,} events/s for "
        f"{r['seconds']:.0f} s sustained)",
        "",
        f"Per call: {r['single_events']:,} sequential 1-row calls, or {max(50, r['single_events'] // 5):,} 100-row calls, "
        "per run, after `gc.freeze()` and without the first warm-up calls. Each path in a fresh process, "
        f"{r['repeat']} rounds, interleaved (every path once per round, the order rotated each round); each figure "
        "is min / median over the rounds; the 1-minute load average at the start-end of each run (2 cores, shared). "
        f"Redis database {r['redis_db']}, flushed per run. The platform's figures include validation, dedupe, the "
        "direct-log append (the offline copy) and the newest-wins online write with its watermark; after each run, "
        "untimed, every call's result, the direct log's entry count and the last call's values online are checked.",
        "",
    ]
    def cpu_row(name: str, label: str) -> str:
        s = summary.get(name)
        if not s or not s.get("cpu_p99_ms"):
            return f"| {label} | — | — | — | — |"
        share = s["preempted_share"]
        return (f"| {label} | {cell(s, 'cpu_p50_ms')} | {cell(s, 'cpu_p99_ms')} | "
                f"{share['min'] * 100:.1f} / {share['median'] * 100:.1f} | {cell(s, 'unpreempted_p99_ms')} |")

    for rows in SIZES:
        lines += [f"**{rows} row{'s' if rows > 1 else ''} per call**", "",
                  "| path | p50 ms (min / median) | p99 ms (min / median) | max ms (min / median) | load 1m per run | "
                  "peak RSS MB | check |",
                  "|---|---:|---:|---:|---|---:|---|"]
        lines += [row(f"{key}_{rows}", LABELS[key]) for key, _, _ in PER_CALL]
        lines += ["", f"Where the {rows}-row time goes: the calling thread's CPU time per call, the share of calls during "
                  "which the kernel preempted it (an involuntary context switch), and the p99 over the calls it did not "
                  "preempt (min / median over the rounds). A call that waits on Redis also waits for redis-server's own "
                  "turn on the shared cores, which no figure of the client shows.", "",
                  "| path | CPU p50 ms | CPU p99 ms | calls preempted % | p99 ms of the calls not preempted |",
                  "|---|---:|---:|---:|---:|"]
        lines += [cpu_row(f"{key}_{rows}", LABELS[key]) for key, _, _ in PER_CALL]
        lines.append("")
    lines += [
        "| sustained and sensor paths (one run each) | p50 (ms) | p99 (ms) | max (ms) | lost | load 1m | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---|---:|",
        once("direct_sustained", "low-latency path, sustained, 100 ms batches (Redis; latency = completion minus "
                                 "event creation)"),
        once("sensor_path", "sensor path, embedded (1 s batches, 5 s ticks, one in-process run per batch)"),
        "",
        "| target (p99: median over the rounds) | value | PASS/MISS |",
        "|---|---:|---|",
        target("platform direct, 1 row, services: p99 < 1 ms", "direct_redis_1", 1.0),
        target("platform direct, 1 row (list of dicts), services: p99 < 1 ms", "direct_redis_dicts_1", 1.0),
        target("platform direct, 1 row, embedded: p99 < 3 ms", "direct_sqlite_1", 3.0),
        target("platform direct, 1 row (list of dicts), embedded: p99 < 3 ms", "direct_sqlite_dicts_1", 3.0),
        f"| platform direct p99 below Feast push p99, 100 rows | {p99('direct_redis_100')} vs {p99('feast_push_100')} ms | "
        f"{'PASS' if (p99('direct_redis_100') or 1e9) < (p99('feast_push_100') or 0) else 'MISS'} |",
        f"| sensor path p99 under 60 s | {sensor.get('p99_ms', 0) / 1000:,.1f} s | "
        f"{'PASS' if sensor and sensor['p99_ms'] < 60_000 else 'MISS'} |",
        f"| zero events lost (sustained and sensor) | {sustained.get('lost')} / {sensor.get('lost')} | "
        f"{'PASS' if sustained.get('lost') == 0 and sensor.get('lost') == 0 else 'MISS'} |",
        "",
        reading(summary),
        "",
        "How: a small batch whose rows are all good is judged without pandas (`push_rows.py`: `push.py`'s parsers and "
        "the view's rule functions, property-tested equal to `prepare_batch`); on Redis the direct log's XADD, the "
        "newest-wins write and the watermark are one Lua script call (EVALSHA: one round trip); on SQLite the log append, the "
        "upsert and the watermark are one transaction on one connection (WAL, no fsync per commit). The floor has "
        "no validation, no log and no newest-wins. Under `dagster dev` the sensor path also pays one run launch per "
        "batch (a new process, about 4-5 s), so producers should batch by seconds, not milliseconds.",
        "",
        environment_markdown(r["environment"]) if "environment" in r else "",
    ]
    return "\n".join(lines) + "\n"
