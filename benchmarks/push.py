"""Push-stream benchmark: event-to-online latency and loss for `user_realtime`, beside stock Feast `push`.

Measured in one run, each path in a fresh process. Services profile (Redis online store, Redis Stream
transport, PostgreSQL offline store; Redis database 9, flushed per job) for:
- Feast `FeatureStore.push(..., to=ONLINE)` with a stock Redis online store config, 1 row and 100 rows
  (the baseline; no validation, no offline write);
- one pipelined `HSET` of pre-encoded values (the floor: a client that did all encoding beforehand);
- the platform's low-latency path `push(..., direct=True)`, 1 row and 100 rows: validation, dedupe, the
  direct-log append for the offline store and the newest-wins online write, all inside the call;
- sustained load: a producer at `rate` events/s in 100 ms batches on the low-latency path for
  `seconds`; event-to-online latency = write completion minus the event's creation time; the direct log
  is then drained offline and every sent event counted there: lost = sent - stored.
Embedded profile (landing directory, Parquet) for the sensor path, in-process: batches landed every
second, the sensor's tick every 5 s, each pending batch ingested by its Dagster run (under `dagster dev`
each run also pays a process launch, see the report).
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
    import gc

    gc.collect()
    gc.freeze()  # as a long-lived service does after start-up: no full GC pauses over start-up objects
    lat = []
    for i in range(calls):
        t0 = time.perf_counter()
        fn(i)
        lat.append(time.perf_counter() - t0)
    return _percentiles(lat[min(20, calls // 10):])  # the first calls warm connections and caches


def _percentiles(values: list[float]) -> dict:
    a = np.array(values) * 1000
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3)}


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
    platform = _platform(args["home"], services=True)
    n = args["rows"]
    frames = [_rows(i, n) for i in range(args["events"])]
    with timer:
        out = _timed(args["events"], lambda i: platform.push(SOURCE, frames[i], direct=True))
    return out


def job_direct_one_row(args: dict, timer: Timer) -> dict:
    """Embedded profile (SQLite online store, landing-directory log), for reference."""
    platform = _platform(args["home"])
    frames = [_rows(i, 1) for i in range(args["events"])]
    with timer:
        out = _timed(args["events"], lambda i: platform.push(SOURCE, frames[i], direct=True))
    return out


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


def run(*, rate: int, seconds: float, single_events: int, mem_cap_mb: float, log) -> tuple[dict, str]:
    results: dict = {"rate": rate, "seconds": seconds, "single_events": single_events, "environment": environment()}
    hundred = max(50, single_events // 5)
    jobs = [("feast_push_one_row", "job_feast_push", {"events": single_events, "rows": 1}),
            ("raw_hset_one_row", "job_raw_hset", {"events": single_events, "rows": 1}),
            ("direct_one_row_redis", "job_direct", {"events": single_events, "rows": 1}),
            ("feast_push_100_rows", "job_feast_push", {"events": hundred, "rows": 100}),
            ("raw_hset_100_rows", "job_raw_hset", {"events": hundred, "rows": 100}),
            ("direct_100_rows_redis", "job_direct", {"events": hundred, "rows": 100}),
            ("direct_one_row", "job_direct_one_row", {"events": single_events}),
            ("direct_sustained", "job_direct_sustained", {"rate": rate, "seconds": seconds}),
            ("sensor_path", "job_sensor_path", {"rate": rate, "seconds": seconds})]
    for key, job, extra in jobs:
        with tempfile.TemporaryDirectory(prefix=f"bench-push-{key}-") as home:
            log(f"push: {key}")
            m = measure(key, f"benchmarks.push:{job}", {"home": str(Path(home)), **extra},
                        timeout_sec=seconds * 20 + 600, mem_cap_mb=mem_cap_mb)
            results[key] = m.as_dict()
    return results, render(results)


def render(r: dict) -> str:
    def ok(key):
        return key in r and r[key]["status"] == "ok"

    def row(key: str, label: str) -> str:
        if key not in r:
            return f"| {label} | not run | | | | |"
        m = r[key]
        if m["status"] != "ok":
            return f"| {label} | {m['status']}: {(m.get('error') or '')[:80]} | | | | |"
        i = m["info"]
        lost = f"{i['lost']:,} of {i['sent']:,}" if "sent" in i else "—"
        return (f"| {label} | {i['p50_ms']:,.2f} | {i['p99_ms']:,.2f} | {i['max_ms']:,.1f} | {lost} | "
                f"{m['peak_rss_mb']:,.0f} |")

    def p99(key):
        return r[key]["info"]["p99_ms"] if ok(key) else None

    sensor = r["sensor_path"]["info"] if ok("sensor_path") else {}
    sustained = r["direct_sustained"]["info"] if ok("direct_sustained") else {}

    def verdict(good):
        return "PASS" if good else "MISS"

    def faster(ours, base):
        a, b = p99(ours), p99(base)
        return f"{a} ms vs {b} ms | {verdict(a is not None and b is not None and a < b)}"

    lines = [
        f"## Push stream: call-to-online latency (`user_realtime`, {r['rate']:,} events/s for {r['seconds']:.0f} s sustained)",
        "",
        "Each path in a fresh process; Redis paths on the services profile (stock Feast Redis config for Feast). "
        f"Per-call figures over {r['single_events']:,} sequential 1-row calls (100-row calls: a fifth as many), after "
        "`gc.freeze()` and without the first warm-up calls; sustained figures per event (write completion minus event "
        "creation). Lost = events sent minus rows in the offline table after the direct log was drained.",
        "",
        "| path | p50 (ms) | p99 (ms) | max (ms) | lost | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
        row("feast_push_one_row", "Feast `push` to online, 1 row (baseline)"),
        row("raw_hset_one_row", "one pipelined HSET of pre-encoded values, 1 row (floor)"),
        row("direct_one_row_redis", "platform `push(direct=True)`, 1 row (validated, logged, online)"),
        row("feast_push_100_rows", "Feast `push` to online, 100 rows (baseline)"),
        row("raw_hset_100_rows", "pipelined HSET of pre-encoded values, 100 rows (floor)"),
        row("direct_100_rows_redis", "platform `push(direct=True)`, 100 rows"),
        row("direct_one_row", "platform `push(direct=True)`, 1 row, embedded profile (SQLite, for reference)"),
        row("direct_sustained", "platform low-latency path, sustained, 100 ms batches (Redis)"),
        row("sensor_path", "sensor path, embedded (1 s batches, 5 s ticks, one in-process run per batch)"),
        "",
        "| target | value | PASS/MISS |",
        "|---|---:|---|",
        f"| low-latency p99 below Feast push p99, 1 row | {faster('direct_one_row_redis', 'feast_push_one_row')} |",
        f"| low-latency p99 below Feast push p99, 100 rows | {faster('direct_100_rows_redis', 'feast_push_100_rows')} |",
        f"| sensor path p99 under 60 s | {sensor.get('p99_ms', 0) / 1000:,.1f} s | "
        f"{verdict(sensor and sensor['p99_ms'] < 60_000)} |",
        f"| zero events lost (sustained and sensor) | {sustained.get('lost')} / {sensor.get('lost')} | "
        f"{verdict(sustained.get('lost') == 0 and sensor.get('lost') == 0)} |",
        f"| sustained throughput reaches the offered rate | {sustained.get('events_per_sec')} / {sensor.get('events_per_sec')} "
        f"events/s | {verdict(sustained.get('events_per_sec', 0) >= 0.95 * r['rate'])} |",
        "",
        "Notes: the low-latency path does more than Feast's push: validation with the view's one rule set (the "
        "Pandera schema's check functions), dedupe, an append to the direct log (the offline store's copy, drained by the "
        "sensor in one run per tick) and the newest-wins online write in Feast's format. Under `dagster dev` the "
        "sensor path also pays one run launch per batch (a new process, about 4-5 s on this machine), so "
        "producers should batch by seconds, not milliseconds.",
        "",
        environment_markdown(r["environment"]) if "environment" in r else "",
    ]
    return "\n".join(lines) + "\n"
