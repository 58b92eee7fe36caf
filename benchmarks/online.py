"""Online sync and online read of `user_activity` on Redis, beside careful baselines, stock Feast and raw redis-py.

Services profile (Redis at FEATURE_PLATFORM_REDIS_HOST/PORT, database `BENCH_REDIS_DB` = env
FEATURE_PLATFORM_BENCH_REDIS_DB, default 9, flushed before each job; the Feast registry in PostgreSQL, database
`fp_bench_online`). Every job is a fresh spawned process (benchmarks/measure.py), the paths interleaved
(run 1 of every path, then run 2, ...); one partition = `users` rows of the six features.

Sync (rows/s of the write call, peak RSS of the whole process, Redis's own time for the write from INFO
commandstats):
- Feast `write_to_online_store` with a stock `RedisOnlineStoreConfig` (newest-wins by reading every entity's
  timestamp first, then writing);
- raw redis-py: one pipelined `HSET` per row of plain-string values (not Feast's bytes, not newest-wins: the
  client's practical limit, for scale);
- careful baseline: what a competent engineer writes with redis-py and hiredis for Feast's bytes, newest-wins:
  keys and values encoded once per distinct value (floats with numpy), a newest-wins Lua script over batches
  of 1,000 rows, packed by hiredis and streamed on one connection, replies read once at the end;
- the platform: `OnlineStore.write` into an empty store, then again over its own values (ties rewrite).
Every Feast-format path is checked in its own run: 2,000 random entities' hashes equal, byte for byte, the
hashes stock Feast's own serializers give (keys, fields, values, timestamps); the platform's are also read
back through stock Feast and compared value by value.

Read (p50/p99 per call, 1 and 100 entities, all six features), in `repeat` fresh processes, the paths
interleaved in rounds over the same random ids: raw redis-py (a default client, the key built per call,
`HMGET` (pipelined for 100), values decoded); raw `HMGET` alone (no decoding, for scale); Feast
`get_online_features`; the platform's `online_features` as plain lists (`output="dict"`) and as a DataFrame.
The platform's answers are checked against Feast's and the raw path's in the same process.
"""

from __future__ import annotations

import os
import struct
import time

import numpy as np
import pandas as pd

from benchmarks.measure import Timer, measure
from benchmarks.report import environment, environment_markdown

NAME = "online"
BENCH_REDIS_DB = int(os.environ.get("FEATURE_PLATFORM_BENCH_REDIS_DB", "9"))
PG_DB = "fp_bench_online"
FEATURES = ["sessions_7d", "avg_session_duration_sec", "messages_sent_7d", "tools_used_7d", "preferred_model",
            "total_tokens_7d"]
CHECK_ENTITIES = 2000
ROUNDS = 50  # read rounds per process: a burst of load on the machine falls on every path alike
SYNC_PATHS = (("feast", "job_sync_feast"), ("raw_redis_py", "job_sync_raw"), ("careful", "job_sync_careful"),
              ("platform", "job_sync_platform"))
SYNC_LABELS = {"feast": "Feast `write_to_online_store` (stock Redis store, newest-wins by reading first)",
               "raw_redis_py": "raw redis-py pipelined `HSET`, plain strings (no Feast bytes, no newest-wins)",
               "careful": "careful baseline: hiredis-packed newest-wins Lua batches, streamed (Feast bytes)",
               "platform": "platform `OnlineStore.write` (Feast bytes, newest-wins)"}


def _settings():
    from feature_platform.config import Settings

    return Settings.from_env({"FEATURE_PLATFORM_PROFILE": "services", "FEATURE_PLATFORM_PG_DB": PG_DB,
                              "FEATURE_PLATFORM_REDIS_DB": str(BENCH_REDIS_DB),
                              "FEATURE_PLATFORM_HOME": "benchmarks/data/online-home"})


def partition(users: int, seed: int = 11) -> pd.DataFrame:
    """One day of `user_activity` for `users` users: realistic, seeded values (incl. closing rows)."""
    rng = np.random.default_rng(seed)
    sessions = rng.poisson(4, users).astype("int64")
    idle = sessions == 0
    models = np.array(["claude-haiku", "claude-opus", "claude-sonnet", "gpt-4o", "llama-3"])
    return pd.DataFrame({
        "user_id": np.arange(1, users + 1, dtype="int64"),
        "sessions_7d": sessions,
        "avg_session_duration_sec": pd.Series(np.where(idle, np.nan, rng.gamma(2, 300, users)), dtype="float32"),
        "messages_sent_7d": sessions * rng.integers(1, 30, users),
        "tools_used_7d": sessions * rng.integers(0, 5, users),
        "preferred_model": np.where(idle, "unknown", models[rng.integers(0, len(models), users)]).astype(object),
        "total_tokens_7d": sessions * rng.integers(100, 20_000, users),
        # yesterday's partition, so reads see the values within the 7-day TTL
        "event_timestamp": pd.Timestamp.now(tz="UTC").floor("D"),
        "created_timestamp": pd.Timestamp.now(tz="UTC").floor("s"),
    })


def _quiet():
    import warnings

    warnings.filterwarnings("ignore")


def _platform():
    _quiet()
    import redis

    import feature_platform as fp

    settings = _settings()
    platform = fp.FeaturePlatform(settings)
    platform.apply()
    redis.Redis(host=settings.redis_host, port=settings.redis_port, db=BENCH_REDIS_DB).flushdb()
    return platform


def _plain_client(platform):
    """A default redis-py client on the benchmark database: what a baseline would use."""
    import redis

    s = platform.runtime.settings
    return redis.Redis(host=s.redis_host, port=s.redis_port, db=BENCH_REDIS_DB)


def _stock_feast(platform):
    """A FeatureStore on the same registry with Feast's default Redis settings (newest-wins by reading)."""
    from feast import FeatureStore, RepoConfig
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    ours = platform.runtime.feast.config
    return FeatureStore(config=RepoConfig(
        project=ours.project, provider=ours.provider, registry=ours.registry_config, offline_store=ours.offline_config,
        online_store=RedisOnlineStoreConfig(connection_string=ours.online_store.connection_string),
        entity_key_serialization_version=ours.entity_key_serialization_version))


def _redis_seconds(client) -> float:
    """Redis's own time in script calls and HSET/HGET/HMGET so far (INFO commandstats), in seconds."""
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("usec", 0) for c in ("evalsha", "eval", "hset", "hget", "hmget")) / 1e6


def _timed_write(client, timer: Timer, write) -> dict:
    """Run `write` under the timer; Redis's own time for it beside (script calls include their inner commands)."""
    client.config_resetstat()
    with timer:
        out = write()
    stats = client.info("commandstats")
    scripts = sum(stats.get(f"cmdstat_{c}", {}).get("usec", 0) for c in ("evalsha", "eval"))
    direct = 0 if scripts else sum(stats.get(f"cmdstat_{c}", {}).get("usec", 0) for c in ("hset", "hget", "hmget"))
    return {"result": out, "redis_sec": round((scripts or direct) / 1e6, 4)}


def expected_hashes(rows: pd.DataFrame, project: str) -> dict[bytes, dict[bytes, bytes]]:
    """The hashes stock Feast writes for `rows`, from Feast's own serializers (one proto per cell)."""
    from feast.infra.online_stores.helpers import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType
    from google.protobuf.timestamp_pb2 import Timestamp

    types = {"avg_session_duration_sec": ValueType.FLOAT, "preferred_model": ValueType.STRING}
    out = {}
    cols = {f: python_values_to_proto_values([None if pd.isna(v) else v for v in rows[f].tolist()],
                                              types.get(f, ValueType.INT64)) for f in FEATURES}
    for i, (user, ts) in enumerate(zip(rows["user_id"], rows["event_timestamp"])):
        key = _redis_key(project, EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(int64_val=int(user))]),
                         entity_key_serialization_version=3)
        stamp = Timestamp()
        stamp.FromNanoseconds(pd.Timestamp(ts).value)
        out[key] = {_mmh3(f"user_activity:{f}"): cols[f][i].SerializeToString() for f in FEATURES}
        out[key][b"_ts:user_activity"] = stamp.SerializeToString()
    return out


def _byte_mismatches(client, rows: pd.DataFrame, project: str) -> dict:
    """Entities of a random sample whose stored hash differs from stock Feast's bytes."""
    sample = rows.sample(min(CHECK_ENTITIES, len(rows)), random_state=3)
    want = expected_hashes(sample, project)
    with client.pipeline(transaction=False) as pipe:
        for key in want:
            pipe.hgetall(key)
        got = pipe.execute()
    return {"checked_entities": len(want), "byte_mismatches": sum(g != w for g, w in zip(got, want.values()))}


def job_sync_feast(args: dict, timer: Timer) -> dict:
    platform = _platform()
    store = _stock_feast(platform)
    client = _plain_client(platform)
    rows = partition(args["users"])
    store.write_to_online_store("user_activity", rows.head(10))  # registry and connection warm
    timed = _timed_write(client, timer, lambda: store.write_to_online_store("user_activity", rows,
                                                                             allow_registry_cache=True))
    return {"rows": len(rows), "redis_sec": timed["redis_sec"], **_byte_mismatches(client, rows, store.config.project)}


def job_sync_raw(args: dict, timer: Timer) -> dict:
    platform = _platform()
    client = _plain_client(platform)
    rows = partition(args["users"])

    def write():
        records = rows[["user_id", *FEATURES]].astype(str).itertuples(index=False, name=None)
        with client.pipeline(transaction=False) as pipe:
            for n, (user, *values) in enumerate(records, 1):
                pipe.hset(f"user:{user}", mapping=dict(zip(FEATURES, values)) | {"_ts": "1761868800"})
                if n % 1000 == 0:
                    pipe.execute()
            pipe.execute()

    timed = _timed_write(client, timer, write)
    sample = rows.sample(CHECK_ENTITIES, random_state=3)
    with client.pipeline(transaction=False) as pipe:
        for user in sample["user_id"]:
            pipe.hgetall(f"user:{user}")
        got = pipe.execute()
    want = sample[FEATURES].astype(str).to_dict("records")
    bad = sum({k.decode(): v.decode() for k, v in g.items() if k != b"_ts"} != w for g, w in zip(got, want))
    return {"rows": len(rows), "redis_sec": timed["redis_sec"], "checked_entities": len(want), "value_mismatches": bad}


def careful_write(client, rows: pd.DataFrame, project: str, batch: int = 1000) -> int:
    """The careful baseline: Feast's bytes, newest-wins, as a competent engineer writes it with redis-py and
    hiredis. Cells are encoded once per distinct value with Feast's protos (floats, mostly distinct, with
    numpy), keys with `struct`; batches of `batch` rows go to a newest-wins Lua script (the platform's own,
    so Redis does the same work), packed by hiredis and streamed on one connection, replies read at the end."""
    import hiredis
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from google.protobuf.timestamp_pb2 import Timestamp

    from feature_platform.feast_format.redis_features import newest_wins_script

    def by_distinct(values, encode):
        cache: dict = {}
        return [b"" if v is None or v != v else cache.get(v) or cache.setdefault(v, encode(v)) for v in values]

    def stamp(ts):
        t = Timestamp()
        t.FromNanoseconds(ts.value)
        return t.SerializeToString()

    name = b"user_id"
    head = struct.pack("<III", 1, 2, len(name)) + name + struct.pack("<II", 4, 8)  # v3 entity key, int64 value
    tail = project.encode()
    keys = [head + struct.pack("<q", u) + tail for u in rows["user_id"].tolist()]
    floats = rows["avg_session_duration_sec"].to_numpy(dtype="<f4")
    packed = np.empty((len(floats), 5), dtype=np.uint8)
    packed[:, 0] = 0x35  # Value.float_val: field 6, fixed32
    packed[:, 1:] = floats.view(np.uint8).reshape(-1, 4)
    float_cells = packed.view("V5").ravel().tolist()
    for i in np.flatnonzero(np.isnan(floats)):
        float_cells[i] = b""
    cells = [by_distinct(rows["event_timestamp"].tolist(), stamp)]
    for f in FEATURES:
        if f == "avg_session_duration_sec":
            cells.append(float_cells)
        elif f == "preferred_model":
            cells.append(by_distinct(rows[f].tolist(), lambda v: ValueProto(string_val=v).SerializeToString()))
        else:
            cells.append(by_distinct(rows[f].tolist(), lambda v: ValueProto(int64_val=v).SerializeToString()))
    from feast.infra.online_stores.helpers import _mmh3

    argv = [b"_ts:user_activity", b"6", *(_mmh3(f"user_activity:{f}") for f in FEATURES)]
    sha = client.script_load(newest_wins_script(len(FEATURES)))
    connection = client.connection_pool.get_connection()
    try:
        sent = 0
        for start in range(0, len(keys), batch):
            stop = min(start + batch, len(keys))
            args = [b"EVALSHA", sha, str(stop - start).encode(), *keys[start:stop], *argv]
            for row in zip(*(c[start:stop] for c in cells)):
                args.extend(row)
            connection.send_packed_command([hiredis.pack_command(tuple(args))], check_health=False)
            sent += 1
        return sum(int(connection.read_response()) for _ in range(sent))
    finally:
        client.connection_pool.release(connection)


def job_sync_careful(args: dict, timer: Timer) -> dict:
    platform = _platform()
    client = _plain_client(platform)
    project = platform.runtime.feast.config.project
    rows = partition(args["users"])
    careful_write(client, rows.head(10), project)  # script loaded, connection open
    timed = _timed_write(client, timer, lambda: careful_write(client, rows, project))
    return {"rows": len(rows), "written": timed["result"], "redis_sec": timed["redis_sec"],
            **_byte_mismatches(client, rows, project)}


def job_sync_platform(args: dict, timer: Timer) -> dict:
    from chat_activity.user_activity import SPEC

    platform = _platform()
    online = platform.runtime.online
    client = _plain_client(platform)
    project = platform.runtime.feast.config.project
    rows = partition(args["users"])
    online.write(SPEC, rows.head(10))  # connection and script cache warm, like the others' warm-up
    timed = _timed_write(client, timer, lambda: online.write(SPEC, rows))
    t0 = time.perf_counter()
    rewritten = online.write(SPEC, rows)
    rewrite_sec = time.perf_counter() - t0
    # Read a sample back through stock Feast: the platform's bytes are Feast's.
    sample = rows.sample(CHECK_ENTITIES, random_state=1).reset_index(drop=True)
    got = _stock_feast(platform).get_online_features([f"user_activity:{f}" for f in FEATURES],
                                                      [{"user_id": int(u)} for u in sample["user_id"]]).to_df()
    mismatches = 0
    for f in FEATURES:
        want, have = sample[f], got[f]
        same = (want.isna() & have.isna()) | (want.astype(object) == have.astype(want.dtype).astype(object))
        mismatches += int((~same).sum())
    return {"rows": len(rows), "written": timed["result"], "redis_sec": timed["redis_sec"], "rewritten": rewritten,
            "rewrite_sec": round(rewrite_sec, 4), "feast_readback_rows": len(sample),
            "feast_readback_mismatches": mismatches, **_byte_mismatches(client, rows, project)}

def job_read(args: dict, timer: Timer) -> dict:
    """All read paths in one process, interleaved in rounds, over the same stored partition (written by the
    platform) and the same random ids; then the answers compared on 200 entities (10 of them absent)."""
    import gc

    from chat_activity.user_activity import SPEC

    platform = _platform()
    rows = partition(args["users"])
    platform.runtime.online.write(SPEC, rows)
    store = _stock_feast(platform)
    client = _plain_client(platform)
    refs = [f"user_activity:{f}" for f in FEATURES]
    raw = CarefulReader(client, store.config.project, SPEC.ttl.total_seconds())
    rng = np.random.default_rng(args.get("seed", 5))
    paths = {
        "raw": lambda ids: raw.read(ids),
        "hmget_only": lambda ids: raw.hmget(ids),
        "feast": lambda ids: store.get_online_features(refs, [{"user_id": u} for u in ids]).to_dict(),
        "platform_dict": lambda ids: platform.online_features(refs, [{"user_id": u} for u in ids], output="dict"),
        "platform_frame": lambda ids: platform.online_features(refs, [{"user_id": u} for u in ids]),
    }
    gc.collect()
    gc.freeze()  # a long-lived server would do the same after start-up (see the report)
    with timer:
        out = {}
        for n in (1, 100):
            calls = args["calls"] if n == 1 else max(100, args["calls"] // 5)
            ids = [[int(u) for u in rng.integers(1, args["users"] + 1, n)] for _ in range(calls)]
            out[n] = _interleaved(paths, ids, rounds=ROUNDS)
    probe = list(range(1, 191)) + list(range(args["users"] + 1, args["users"] + 11))
    a = platform.online_features(refs, [{"user_id": u} for u in probe], output="dict")
    b = store.get_online_features(refs, [{"user_id": u} for u in probe]).to_dict()
    c = raw.read(probe)
    return {"by_entities": out, "platform_equals_feast_on_200_entities": all(_same(a[f], b[f]) for f in FEATURES),
            "platform_equals_raw_on_200_entities": all(_same(a[f], c[f]) for f in FEATURES)}


def _interleaved(paths: dict, ids: list[list[int]], rounds: int) -> dict:
    """p50/p99 per path: `rounds` rounds, each path in turn (the order rotating) over its share of `ids`."""
    for fn in paths.values():  # warm: connections open, plans cached
        for batch in ids[:20]:
            fn(batch)
    names = list(paths)
    lat: dict[str, list[float]] = {name: [] for name in names}
    share = max(1, len(ids) // rounds)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn = paths[name]
            for batch in ids[r * share:(r + 1) * share]:
                t0 = time.perf_counter()
                fn(batch)
                lat[name].append(time.perf_counter() - t0)
    out = {}
    for name, values in lat.items():
        a = np.array(values) * 1000
        out[name] = {"calls": len(a), "p50_ms": round(float(np.percentile(a, 50)), 4),
                     "p99_ms": round(float(np.percentile(a, 99)), 4)}
    return out


class CarefulReader:
    """The careful raw read: a default redis-py client, the key built per call with `struct`, one HMGET (a
    non-transactional pipeline of them for several entities), the values decoded and the TTL applied: the same
    answer as the platform's `output="dict"` (without metadata)."""

    def __init__(self, client, project: str, ttl_sec: float):
        from feast.infra.online_stores.helpers import _mmh3

        self.client = client
        name = b"user_id"
        self.head = struct.pack("<III", 1, 2, len(name)) + name + struct.pack("<II", 4, 8)
        self.tail = project.encode()
        self.fields = [b"_ts:user_activity", *(_mmh3(f"user_activity:{f}") for f in FEATURES)]
        self.ttl_ns = ttl_sec * 1e9
        from feast.protos.feast.types.Value_pb2 import Value

        from feature_platform.feast_format.codec import parse_timestamp

        def decode_value(raw: bytes | None):  # protobuf's parser, every time (the platform remembers repeated bytes)
            if not raw:
                return None
            value = Value.FromString(raw)
            field = value.WhichOneof("val")
            return None if field is None or field == "null_val" else getattr(value, field)

        def decode_timestamp(raw: bytes | None) -> int | None:
            return None if raw is None else parse_timestamp(raw)

        self.decode_timestamp, self.decode_value = decode_timestamp, decode_value

    def hmget(self, ids: list[int]) -> list:
        keys = [self.head + struct.pack("<q", u) + self.tail for u in ids]
        if len(keys) == 1:
            return [self.client.hmget(keys[0], self.fields)]
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, self.fields)
            return pipe.execute()

    def read(self, ids: list[int]) -> dict[str, list]:
        decode_timestamp, decode_value = self.decode_timestamp, self.decode_value
        now = time.time_ns()
        out: dict[str, list] = {"user_id": list(ids), **{f: [] for f in FEATURES}}
        columns = [out[f] for f in FEATURES]
        for reply in self.hmget(ids):
            stamp = decode_timestamp(reply[0])
            fresh = stamp is not None and now - stamp <= self.ttl_ns
            for column, raw in zip(columns, reply[1:]):
                column.append(decode_value(raw) if fresh else None)
        return out


def _same(xs, ys) -> bool:
    return all((x is None and y is None) or (x is not None and y is not None and
                                             (x == y or (isinstance(x, float) and abs(x - y) < 1e-3))) for x, y in zip(xs, ys))


def run(*, users: int, repeat: int, calls: int, mem_cap_mb: float, log) -> tuple[dict, str]:
    results: dict = {"users": users, "repeat": repeat, "redis_db": BENCH_REDIS_DB, "environment": environment()}
    for key, _ in SYNC_PATHS:
        results[f"sync_{key}"] = []
    results["read_runs"] = []
    for i in range(repeat):  # interleaved: run i of every path, then run i + 1
        for key, job in SYNC_PATHS:
            log(f"online: sync {key} run {i + 1}/{repeat}")
            m = measure(key, f"benchmarks.online:{job}", {"users": users}, timeout_sec=900, mem_cap_mb=mem_cap_mb)
            results[f"sync_{key}"].append(m.as_dict())
        log(f"online: read latency run {i + 1}/{repeat}")
        results["read_runs"].append(measure("read", "benchmarks.online:job_read",
                                            {"users": users, "calls": calls, "seed": 5 + i},
                                            timeout_sec=1800, mem_cap_mb=mem_cap_mb).as_dict())
    return results, render(results)


def _ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["status"] == "ok"]


def _median(values) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def _loads(runs: list[dict]) -> str:
    return ", ".join(f"{r['load_1m'][0]:.1f}" for r in runs if r.get("load_1m"))


def _sync_stats(r: dict) -> dict:
    users = r["users"]
    out = {}
    for key, _ in SYNC_PATHS:
        ok = _ok(r[f"sync_{key}"])
        if ok:
            walls = [m["wall_sec"] for m in ok]
            out[key] = {"runs": len(ok), "of": len(r[f"sync_{key}"]), "wall_min": min(walls), "wall_median": _median(walls),
                        "rate_best": users / min(walls), "rate_median": users / _median(walls),
                        "rss_median": _median([m["peak_rss_mb"] for m in ok]), "rss_max": max(m["peak_rss_mb"] for m in ok),
                        "redis_median": _median([m["info"].get("redis_sec", float("nan")) for m in ok]),
                        "loads": _loads(r[f"sync_{key}"]), "infos": [m["info"] for m in ok]}
        else:
            out[key] = {"error": (r[f"sync_{key}"][0].get("error") or "")[:120]}
    return out


def _read_stats(r: dict) -> dict:
    """Per entity count and path: p50/p99 of each run, and each run's p99 over raw's in the same process."""
    ok = _ok(r["read_runs"])
    out: dict = {}
    for m in ok:
        for n, paths in m["info"]["by_entities"].items():
            for name, s in paths.items():
                slot = out.setdefault(str(n), {}).setdefault(name, {"p50": [], "p99": [], "vs_raw": [], "p50_vs_raw": []})
                slot["p50"].append(s["p50_ms"])
                slot["p50_vs_raw"].append(s["p50_ms"] / paths["raw"]["p50_ms"])
                slot["p99"].append(s["p99_ms"])
                slot["vs_raw"].append(s["p99_ms"] / paths["raw"]["p99_ms"])
    return out


def _targets(sync: dict, read: dict) -> list[str]:
    def verdict(good: bool) -> str:
        return "PASS" if good else "MISS"

    out = ["| target (this section) | value | PASS/MISS |", "|---|---:|---|"]
    p = sync.get("platform", {})
    if "rate_median" in p:
        out.append(f"| online sync at least 250k rows/s (median of runs; best) | {p['rate_median']:,.0f} "
                   f"({p['rate_best']:,.0f}) | {verdict(p['rate_median'] >= 250_000)} |")
        out.append(f"| online sync peak RSS under 300 MB (largest run) | {p['rss_max']:,.0f} MB | "
                   f"{verdict(p['rss_max'] < 300)} |")
        c = sync.get("careful", {})
        if "rate_median" in c:
            out.append(f"| online sync vs the careful baseline (median) | {p['rate_median'] / c['rate_median']:.2f}x | "
                       f"{verdict(p['rate_median'] >= c['rate_median'])} |")
    one = read.get("1", {}).get("platform_dict")
    if one:
        ratio = _median(one["vs_raw"])
        out.append(f"| read p99 within 1.2x of the careful raw read, 1 entity (`output=\"dict\"`; median of runs) | "
                   f"{ratio:.2f}x | {verdict(ratio <= 1.2)} |")
        bare = read["1"].get("hmget_only")
        if bare:  # the stricter reading: a bare HMGET that returns undecoded bytes
            ratios = [a / b for a, b in zip(one["p99"], bare["p99"])]
            out.append(f"| (stricter) read p99 within 1.2x of a bare HMGET, no decoding, 1 entity (median of runs) | "
                       f"{_median(ratios):.2f}x | {verdict(_median(ratios) <= 1.2)} |")
    hundred = read.get("100", {}).get("platform_dict")
    if hundred:
        ratio = _median(hundred["vs_raw"])
        out.append(f"| read p99 within 1.2x of raw, 100 entities (median of runs) | {ratio:.2f}x | {verdict(ratio <= 1.2)} |")
    return out


def render(r: dict) -> str:
    users = r["users"]
    sync, read = _sync_stats(r), _read_stats(r)
    lines = [f"## Online sync and read (`user_activity`, {users:,} entities, Redis)", "",
             f"Services profile (Redis database {r.get('redis_db', BENCH_REDIS_DB)}), each job a fresh process, the paths "
             f"interleaved, {r['repeat']} runs each; rows/s = rows / wall time of the write call; peak RSS = the whole "
             "process's `VmHWM` (imports included); Redis time = the server's own time for the write (INFO "
             "commandstats: script calls with the commands they run, or the HSET/HGET calls); load = 1-minute load "
             "average at the start of each run (2 cores, shared).", "",
             "| online sync | wall min / median (s) | rows/s best / median | peak RSS median / max (MB) | Redis time "
             "median (s) | vs careful (median) | load per run |", "|---|---:|---:|---:|---:|---:|---|"]
    careful = sync.get("careful", {}).get("rate_median")
    for key, _ in SYNC_PATHS:
        m = sync[key]
        if "error" in m:
            lines.append(f"| {SYNC_LABELS[key]} | failed: {m['error']} | | | | | |")
            continue
        vs = f"{m['rate_median'] / careful:.2f}x" if careful else "n/a"
        lines.append(f"| {SYNC_LABELS[key]} | {m['wall_min']:.3f} / {m['wall_median']:.3f} | {m['rate_best']:,.0f} / "
                     f"{m['rate_median']:,.0f} | {m['rss_median']:,.0f} / {m['rss_max']:,.0f} | {m['redis_median']:.3f} | "
                     f"{vs} | {m['loads']} |")
    lines.append("")
    checks = []
    for key in ("feast", "careful", "platform"):
        m = sync.get(key, {})
        if "infos" in m:
            bad = sum(i["byte_mismatches"] for i in m["infos"])
            checks.append(f"{key}: {bad} of {sum(i['checked_entities'] for i in m['infos']):,} sampled hashes differ "
                          "from stock Feast's serializers")
    raw = sync.get("raw_redis_py", {})
    if "infos" in raw:
        checks.append(f"raw redis-py: {sum(i['value_mismatches'] for i in raw['infos'])} value mismatches in "
                      f"{sum(i['checked_entities'] for i in raw['infos']):,} sampled entities")
    p = sync.get("platform", {})
    if "infos" in p:
        i = p["infos"][0]
        checks.append(f"platform: {i['written']:,} rows written, rewriting the partition (ties rewrite) "
                      f"{_median([x['rewrite_sec'] for x in p['infos']]):.3f} s median for {i['rewritten']:,} rows, "
                      f"read back through stock Feast: {sum(x['feast_readback_mismatches'] for x in p['infos'])} "
                      f"mismatches in {sum(x['feast_readback_rows'] for x in p['infos']):,} entities x 6 features")
    lines += [f"Checks in the same runs: {'; '.join(checks)}.", ""]
    if "redis_median" in p and "redis_median" in sync.get("careful", {}):
        lines += [f"Where the sync time goes: Redis itself spends {p['redis_median']:.3f} s median on the platform's write "
                  f"({p['redis_median'] / users * 1e6:.1f} us a row: inside the newest-wins script, an HGET of the stored "
                  f"timestamp and an HSET of seven fields per row) and {sync['careful']['redis_median']:.3f} s on the "
                  f"careful baseline's (the same script); the platform's wall time is {p['wall_median'] / p['redis_median']:.2f}x "
                  f"Redis's own (median), the baseline's {sync['careful']['wall_median'] / sync['careful']['redis_median']:.2f}x: "
                  "the platform's client work (about 0.07 s of framing for 100,000 rows) runs while Redis works, so its "
                  "rate is bounded by Redis's time per row on a loaded machine, not by Python.", ""]
    read_ok = _ok(r["read_runs"])
    if read_ok:
        labels = {"raw": "careful raw: redis-py HMGET, key per call, decoded, TTL applied",
                  "hmget_only": "raw HMGET alone (no decoding; for scale)",
                  "feast": "Feast `get_online_features`",
                  "platform_dict": "platform `online_features(output=\"dict\")`",
                  "platform_frame": "platform `online_features` (DataFrame)"}
        lines += [f"Reads: {len(read_ok)} processes (load at start: {_loads(r['read_runs'])}), the paths interleaved "
                  f"in {ROUNDS} rounds over the same random ids; p99 vs raw = each process's p99 over its careful raw p99.", "",
                  "| online read | p50 median (ms) | p50 vs raw (median) | p99 min / median (ms) | p99 vs raw median (min-max) |",
                  "|---|---:|---:|---:|---:|"]
        for n, paths in read.items():
            for key, label in labels.items():
                s = paths.get(key)
                if s:
                    lines.append(f"| {n} entit{'y' if n == '1' else 'ies'}: {label} | {_median(s['p50']):.3f} | "
                                 f"{_median(s['p50_vs_raw']):.2f}x | "
                                 f"{min(s['p99']):.3f} / {_median(s['p99']):.3f} | {_median(s['vs_raw']):.2f}x "
                                 f"({min(s['vs_raw']):.2f}-{max(s['vs_raw']):.2f}) |")
        same_f = all(m["info"]["platform_equals_feast_on_200_entities"] for m in read_ok)
        same_r = all(m["info"]["platform_equals_raw_on_200_entities"] for m in read_ok)
        lines += ["", f"Platform answers equal Feast's and the careful raw read's on 200 entities (10 absent), every "
                  f"process: {same_f and same_r}.", ""]
    else:
        lines += [f"Read benchmark failed: {(r['read_runs'][0].get('error') or '')[:300]}", ""]
    lines += _targets(sync, read)
    lines += ["", "The DataFrame output adds pandas construction: serving code on a latency budget uses "
              "`output=\"dict\"`, which returns the same values (tested).", ""]
    if "environment" in r:
        lines += [environment_markdown(r["environment"])]
    return "\n".join(lines) + "\n"


def hmget_all(client, keys: list[bytes], fields: list) -> list:
    """One HMGET, or a non-transactional pipeline of them (one round trip): online_load's raw path."""
    if len(keys) == 1:
        return [client.hmget(keys[0], fields)]
    with client.pipeline(transaction=False) as pipe:
        for k in keys:
            pipe.hmget(k, fields)
        return pipe.execute()
