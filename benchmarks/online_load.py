"""Online read under load: many concurrent clients for a fixed time, every response checked.

One partition of `user_activity` is materialized through Dagster on the services profile (PostgreSQL
offline, real Redis online) from the seeded sessions log; its offline rows are the expected answers.
Then `processes` spawned worker processes (the GIL would serialize one) of `threads` threads each run a
closed loop (no think time: each client sends its next request when the previous one returns) for
`seconds` per scenario, each request for 1 or 100 uniformly random user ids (ids absent from the
partition included: they must come back as missing). Paths, in the same processes under the same load:

- **platform**: `FeaturePlatform.online_features(..., output="dict")`, all six features (resolution,
  join-key checks, one pipelined round trip, decoding, the TTL check, column lists);
- **raw**: redis-py `HMGET` of the same Feast keys (pipelined for 100) plus `decode_value`, keys built per
  request: the floor a client of Feast's format can reach.

Latency = the call only; the check of every response against the expected rows comes after it (same
work for both paths). Errors = exceptions + wrong answers (any value, entity or missing entity). The
test (`feature_platform_tests/test_online_load.py`) runs this same code, briefly and on a few hundred
entities.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue
import resource
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from benchmarks.online import hmget_all
from benchmarks.report import environment, environment_markdown

NAME = "online_load"
VIEW = "user_activity"
PG_DB = "fp_bench_online_load"
# Redis database flushed by this benchmark (the online benchmarks use 9); override to run beside tests.
BENCH_REDIS_DB = int(os.environ.get("FEATURE_PLATFORM_BENCH_REDIS_DB", "9"))
SCENARIOS = (("raw", 1), ("platform", 1), ("raw", 100), ("platform", 100))  # baseline first, same load
WARMUP_SEC = 0.5  # per path, unrecorded: every thread's connection is open before the clock starts
ERROR_SAMPLES = 5


@dataclass(frozen=True)
class Expected:
    """The answer for every user id in [1, max_id]: a tuple of the features' values, all None if absent."""

    features: tuple[str, ...]
    rows: list  # index = user id; rows[0] unused
    present: int

    @classmethod
    def from_offline(cls, rows: pd.DataFrame, features, max_id: int) -> Expected:
        if rows["user_id"].duplicated().any():
            raise ValueError(f"view {VIEW!r}: duplicate user_id in the partition's offline rows")
        table = [(None,) * len(features)] * (max_id + 1)
        cols = []
        for f in features:
            col = rows[f]
            if col.dtype.kind == "f":  # the platform decodes float32 exactly: compare float32 to float32
                col = pd.Series(col.to_numpy(dtype=col.dtype, na_value=np.nan))
            cols.append([None if v is None or v is pd.NA or v != v else v for v in col.astype(object).tolist()])
        present = 0
        for uid, values in zip(rows["user_id"].tolist(), zip(*cols)):
            if 1 <= uid <= max_id:
                table[uid] = values
                present += 1
        return cls(tuple(features), table, present)


def check(expected: Expected, path: str, users: list[int], got: list[tuple], got_ids: list | None = None) -> str | None:
    """None if `got` (one tuple of feature values per requested user) is the expected answer, else why not,
    naming the view, the entity and the column."""
    want = [expected.rows[u] for u in users]
    if got == want and (got_ids is None or got_ids == users) and _same_types(got, want):
        return None
    if got_ids is not None and got_ids != users:
        return f"{path}: view {VIEW!r}: entity column user_id is {got_ids[:5]}..., requested {users[:5]}..."
    if len(got) != len(want):
        return f"{path}: view {VIEW!r}: {len(got)} rows for {len(want)} requested entities"
    for row, (u, g, w) in enumerate(zip(users, got, want)):
        for f, gv, wv in zip(expected.features, g, w):
            if gv != wv or type(gv) is not type(wv):  # 2.0 for an int64 2 is wrong too
                return (f"{path}: view {VIEW!r}, column {f!r}, row {row} (user_id={u}): got {gv!r}, "
                        f"expected {wv!r}{' (entity absent)' if w == (None,) * len(w) else ''}")
    return f"{path}: view {VIEW!r}: response differs from the expected rows"


def _same_types(got: list[tuple], want: list[tuple]) -> bool:
    return all(type(a) is type(b) for g, w in zip(got, want) for a, b in zip(g, w))


def _request_fns(platform, expected: Expected, now):
    """path -> (users -> list of value tuples, entity ids or None)."""
    from feature_platform.feast_format import codec as fmt

    refs = [f"{VIEW}:{f}" for f in expected.features]
    client = platform.runtime.online.features.client
    project = platform.runtime.online.features.project
    fields = [fmt.timestamp_field(VIEW), *(fmt.field_key(VIEW, f) for f in expected.features)]
    cols = list(expected.features)

    def via_platform(users):
        data = platform.online_features(refs, [{"user_id": u} for u in users], output="dict", now=now)
        return list(zip(*(data[c] for c in cols))), data["user_id"]

    def raw(users):
        replies = hmget_all(client, fmt.entity_keys("user_id", "int64", users, project), fields)
        out = []
        for r in replies:
            fmt.decode_timestamp(r[0])
            out.append(tuple(fmt.decode_value(v) for v in r[1:]))
        return out, None

    return {"platform": via_platform, "raw": raw}


def _client_loop(fn, expected: Expected, path: str, entities: int, max_id: int, deadline: float, seed, out: dict):
    rng = np.random.default_rng(seed)
    lat, errors, wrong, exceptions, non_200, present, checked = [], [], 0, 0, 0, 0, 0
    if hasattr(fn, "prepare"):
        fn.prepare()  # e.g. an HTTP path opens this thread's keep-alive connection before its first timed call
    while time.perf_counter() < deadline:
        users = rng.integers(1, max_id + 1, entities).tolist()
        t0 = time.perf_counter()
        try:
            got, ids = fn(users)
        except Exception as exc:  # noqa: BLE001 - counted and sampled: a load test reports, it does not stop
            lat.append(time.perf_counter() - t0)
            exceptions += 1
            non_200 += getattr(exc, "http_status", None) is not None  # an HTTP path's error response
            if len(errors) < ERROR_SAMPLES:
                errors.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        lat.append(time.perf_counter() - t0)
        checked += 1
        why = check(expected, path, users, got, ids)
        if why is not None:
            wrong += 1
            if len(errors) < ERROR_SAMPLES:
                errors.append(why)
        present += sum(1 for row in got if any(v is not None for v in row))
    out.update(lat=lat, errors=errors, wrong=wrong, exceptions=exceptions, non_200=non_200, present=present,
               checked=checked)


def _worker(index: int, settings, expected: Expected, now, scenarios, seconds: float, threads: int, max_id: int,
            seed: int, barrier, results, factory=None) -> None:
    """One client process: set up once, then each scenario with `threads` clients, in step with the others.
    `factory(platform, expected, now)` -> {path: fn} adds paths (a picklable callable; default: raw and platform)."""
    try:
        import warnings

        warnings.filterwarnings("ignore")
        from feature_platform.platform import FeaturePlatform

        platform = FeaturePlatform(settings)
        fns = (factory or _request_fns)(platform, expected, now)
        for fn in fns.values():
            fn([1])  # resolves features and opens the store in this thread, before any client thread
        gc.collect()
        gc.freeze()  # as a long-lived server would after start-up (and benchmarks/online.py does)
        plan = [("warmup", path, 1, WARMUP_SEC) for path in fns] + [("run", p, n, seconds) for p, n in scenarios]
        for step, (kind, path, entities, duration) in enumerate(plan):
            barrier.wait(timeout=600)
            cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
            wall0, t0 = time.time(), time.perf_counter()
            deadline = t0 + duration
            outs = [{} for _ in range(threads)]
            pool = [threading.Thread(target=_client_loop, daemon=True,
                                     args=(fns[path], expected, path, entities, max_id, deadline,
                                           [seed, index, t, step], outs[t])) for t in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            if kind == "warmup":
                continue
            results.put(("ok", index, (path, entities), {
                "elapsed_sec": time.perf_counter() - t0, "window": (wall0, time.time()),  # for server-side samplers
                "cpu_sec": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0,
                "lat": np.concatenate([np.asarray(o["lat"], dtype="float64") for o in outs]),
                **{k: sum(o[k] for o in outs) for k in ("wrong", "exceptions", "non_200", "present", "checked")},
                "errors": [e for o in outs for e in o["errors"]][:ERROR_SAMPLES],
            }))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the run with it
        barrier.abort()
        results.put(("error", index, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"))


def run_load(settings, expected: Expected, *, now, seconds: float, processes: int = 2, threads: int = 4,
             max_id: int | None = None, scenarios=SCENARIOS, seed: int = 3, factory=None) -> dict:
    """Run every scenario for `seconds` with `processes` x `threads` closed-loop clients; returns per
    scenario the requests served, requests/s, errors and latency percentiles, plus the ratios to raw.
    `factory`: see `_worker` (benchmarks/http_serving.py adds the HTTP server as a path)."""
    max_id = max_id or len(expected.rows) - 1
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_worker, name=f"online-load-{i}", daemon=True,
                           args=(i, settings, expected, now, tuple(scenarios), seconds, threads, max_id, seed,
                                 barrier, results, factory)) for i in range(processes)]
    load = [round(os.getloadavg()[0], 2)]
    for w in workers:
        w.start()
    parts: dict = {}
    deadline = time.monotonic() + 600 + 2 * seconds * len(scenarios)  # start-up, then the scenarios
    try:
        for _ in range(processes * len(scenarios)):
            while True:
                try:
                    status, index, key, payload = results.get(timeout=1)
                    break
                except queue.Empty:
                    dead = [w.name for w in workers if w.exitcode not in (None, 0)]
                    if dead or time.monotonic() > deadline:
                        raise RuntimeError(f"online load: workers {dead} died" if dead else
                                           "online load: the workers did not finish in time") from None
            if status == "error":
                raise RuntimeError(f"online load: worker {index} failed: {payload}")
            parts.setdefault(key, []).append(payload)
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
                w.join()
    load.append(round(os.getloadavg()[0], 2))
    out = {"processes": processes, "threads": threads, "clients": processes * threads, "seconds": seconds,
           "max_id": max_id, "entities_online": expected.present, "load_1m": load, "scenarios": {}}
    for path, entities in scenarios:
        out["scenarios"][f"{path}_{entities}"] = _summarize(path, entities, parts[(path, entities)])
    for entities in sorted({n for _, n in scenarios}):
        p, r = out["scenarios"].get(f"platform_{entities}"), out["scenarios"].get(f"raw_{entities}")
        if p and r and r["requests"] and p["requests"]:
            p["vs_raw"] = {"requests_per_sec": round(p["requests_per_sec"] / r["requests_per_sec"], 3),
                           **{k: round(p[k] / r[k], 3) for k in ("p50_ms", "p99_ms", "p999_ms")}}
    return out


def _summarize(path: str, entities: int, parts: list[dict]) -> dict:
    lat = np.concatenate([p["lat"] for p in parts]) * 1000
    requests = int(len(lat))
    elapsed = max(p["elapsed_sec"] for p in parts)
    wrong, exceptions = sum(p["wrong"] for p in parts), sum(p["exceptions"] for p in parts)

    def pct(q):
        return round(float(np.percentile(lat, q)), 4) if requests else None

    return {
        "path": path, "entities_per_request": entities, "requests": requests, "elapsed_sec": round(elapsed, 3),
        "requests_per_sec": round(requests / elapsed, 1), "entities_per_sec": round(requests * entities / elapsed, 1),
        "errors": wrong + exceptions, "wrong_answers": wrong, "exceptions": exceptions,
        "non_200": sum(p.get("non_200", 0) for p in parts),  # of the exceptions: HTTP error responses
        "responses_checked": sum(p["checked"] for p in parts),
        "entities_read": requests * entities, "entities_with_values": sum(p["present"] for p in parts),
        "p50_ms": pct(50), "p99_ms": pct(99), "p999_ms": pct(99.9), "max_ms": round(float(lat.max()), 4) if requests else None,
        "client_cpu_ms_per_request": round(1000 * sum(p["cpu_sec"] for p in parts) / requests, 4) if requests else None,
        "error_samples": [e for p in parts for e in p["errors"]][:ERROR_SAMPLES],
        "window": [min(p["window"][0] for p in parts), max(p["window"][1] for p in parts)],  # wall clock (epoch s)
    }


# --- the benchmark ------------------------------------------------------------------------------------
def _settings(home, sessions, day: date):
    from feature_platform.config import Settings

    return Settings.from_env({
        "FEATURE_PLATFORM_PROFILE": "services", "FEATURE_PLATFORM_HOME": str(home),
        "FEATURE_PLATFORM_SESSIONS_PATH": str(sessions), "FEATURE_PLATFORM_PARTITIONS_START": day.isoformat(),
        "FEATURE_PLATFORM_PG_DB": PG_DB, "FEATURE_PLATFORM_DAGSTER_PG_DB": PG_DB + "_dagster",
        "FEATURE_PLATFORM_REDIS_DB": str(BENCH_REDIS_DB),
    })


def _reset(settings) -> None:
    """This benchmark's own databases, dropped (PostgreSQL) and flushed (Redis): a fresh start and no leftovers."""
    import psycopg
    import redis

    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        for db in (settings.pg_db, settings.dagster_pg_db):
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    redis.Redis(host=settings.redis_host, port=settings.redis_port, db=settings.redis_db).flushdb()


def materialize(settings, day: date) -> tuple[pd.DataFrame, float]:
    """Materialize partition `day` of the view through Dagster; its offline rows as the expected answers."""
    import warnings

    warnings.filterwarnings("ignore")
    from feature_platform.platform import FeaturePlatform

    platform = FeaturePlatform(settings)
    platform.apply()
    t0 = time.perf_counter()
    platform.materialize(VIEW, day)
    sec = time.perf_counter() - t0
    rows = platform.offline_table(VIEW, day, day)
    if rows.empty:
        raise RuntimeError(f"view {VIEW!r}: partition {day} has no offline rows after materializing")
    return rows, sec


def run(*, users: int, seed: int, seconds: float, processes: int = 2, threads: int = 4, log=print) -> tuple[dict, str]:
    import shutil

    from chat_activity.user_activity import SPEC

    from benchmarks.backfill import END_DAY, ensure_sessions
    from benchmarks.data import DATA_ROOT
    from feature_platform.vocabulary import day_end

    sessions, n_sessions = ensure_sessions(users, 1, seed, log=log)  # the partition day and the 8 before it
    home = DATA_ROOT / "online-load-home"
    shutil.rmtree(home, ignore_errors=True)
    settings = _settings(home, sessions, END_DAY)
    _reset(settings)
    results: dict = {"users": users, "partition": END_DAY.isoformat(), "sessions": n_sessions,
                     "redis_db": BENCH_REDIS_DB, "environment": environment()}
    try:
        log(f"online_load: materializing {VIEW} {END_DAY} for {users:,} users through Dagster (services profile)")
        rows, sec = materialize(settings, END_DAY)
        expected = Expected.from_offline(rows, SPEC.feature_names, users)
        results |= {"materialize_sec": round(sec, 1), "offline_rows": len(rows)}
        now = pd.Timestamp(day_end(END_DAY)) + timedelta(hours=1)  # within the 7-day TTL: every row is live
        log(f"online_load: {processes} processes x {threads} threads, {seconds:g}s per scenario, "
            f"{expected.present:,} of {users:,} ids online")
        results["load"] = run_load(settings, expected, now=now.to_pydatetime(), seconds=seconds, processes=processes,
                                   threads=threads, max_id=users, seed=seed)
    finally:
        _reset(settings)
    return results, render(results)


def render(r: dict) -> str:
    ld = r["load"]
    lines = [
        f"## Online read under load (`user_activity`, {ld['entities_online']:,} of {r['users']:,} ids online, Redis, "
        f"{ld['clients']} concurrent clients)", "",
        f"One partition ({r['partition']}, {r['offline_rows']:,} rows from {r['sessions']:,} sessions) materialized "
        f"through Dagster on the services profile ({r['materialize_sec']:.1f} s), its offline rows the expected answers. "
        f"{ld['processes']} spawned processes x {ld['threads']} threads on loopback, closed loop (no think time), "
        f"{ld['seconds']:g} s per scenario after a {WARMUP_SEC:g} s warm-up (`gc.freeze()` after start-up), uniformly random ids in [1, {ld['max_id']:,}] "
        "(absent ids must come back missing); raw and platform in the same processes, one after the other. "
        "Latency = the call; every response is then checked against the expected rows (errors = exceptions + "
        "wrong answers). `platform` = `online_features(..., output=\"dict\")`, all six features; `raw` = redis-py "
        "`HMGET` (pipelined for 100) + `decode_value`, keys built per request.", "",
        "| entities/request | path | requests | requests/s | errors | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | "
        "client CPU/request, check included (ms) | vs raw: requests/s, p50, p99, p99.9 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in ld["scenarios"].values():
        v = s.get("vs_raw")
        ratio = (f"{v['requests_per_sec']:.2f}x, {v['p50_ms']:.2f}x, {v['p99_ms']:.2f}x, {v['p999_ms']:.2f}x" if v else "")
        lines.append(f"| {s['entities_per_request']} | {s['path']} | {s['requests']:,} | {s['requests_per_sec']:,.0f} | "
                     f"{s['errors']} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {s['p999_ms']:.3f} | {s['max_ms']:.1f} | "
                     f"{s['client_cpu_ms_per_request']:.3f} | {ratio} |")
    checked = sum(s["responses_checked"] for s in ld["scenarios"].values())
    found = sum(s["entities_with_values"] for s in ld["scenarios"].values())
    read = sum(s["entities_read"] for s in ld["scenarios"].values())
    errors = sum(s["errors"] for s in ld["scenarios"].values())
    lines += ["", f"Checked: {checked:,} responses, {read:,} entities ({found:,} with values, the rest absent ids); "
              f"errors: {errors}. Load average (1 min) {ld['load_1m'][0]} before, {ld['load_1m'][1]} after "
              "(the clients, Redis and anything else on the machine share its cores).", ""]
    samples = [e for s in ld["scenarios"].values() for e in s["error_samples"]]
    if samples:
        lines += ["Error samples:", *[f"- {e}" for e in samples], ""]
    lines += ["| target | value | PASS/MISS |", "|---|---:|---|",
              f"| zero errors under load (exceptions + wrong answers) | {errors} | {'PASS' if errors == 0 else 'MISS'} |", ""]
    lines.append(environment_markdown(r["environment"]))
    return "\n".join(lines) + "\n"
