"""Full backfill: a year of `user_activity` partitions through Dagster, beside two careful DuckDB baselines.

Data: the seeded sessions log (`generate_day`, the demo generator) for `days` partition days plus the
8 days before them, stored as one Parquet file per day (`benchmarks/data/sessions-users<N>-days<D>-
seed<S>/`, written once, reused). Each job is a fresh spawned process (benchmarks/measure.py); the jobs
are interleaved (loop, platform, engine; then again), `--repeat` times, then the single pass `--repeat` times
(after the others: see `AFTER_ROUNDS`).

- **loop**: the careful per-partition DuckDB loop: one query per partition day over only the 8 daily files
  its window needs (the 7 days, and the day before for the closing rows), computing the six aggregates and
  the closing rows, fetched as Arrow: compute only, nothing written. DuckDB uses both cores.
- **single pass**: one DuckDB query over every file: each event joined to the 8 partition days it feeds
  (its day and the 6 after, plus the closing day), grouped by (user, day), the result kept as a table;
  DuckDB's memory limit 8 GB (`SINGLE_PASS_MEMORY`, spilling past it): with its default (80% of RAM) it
  passes the benchmark's 14 GB cap.
- **platform**: `FeaturePlatform.materialize` of each Dagster range run a backfill launches
  (`BackfillPolicy.multi_run`, FEATURE_PLATFORM_BACKFILL_DAYS_PER_RUN days each), one run at a time, on the
  embedded profile (Parquet offline, Feast SQLite online) in a fresh home; per run its time split
  (`feature_platform.util.phases`: read, aggregate, validate, write offline, write online, checks; the rest is
  Dagster's). Then, outside the timer: every partition materialized in Dagster and offline, every day's rows
  equal to the loop's of the same round (count, a hash of the exact columns, the sum of the mean column), and
  2,000 random entities read online equal to their newest offline row.
- **engine**: the platform's compute engine alone over the same chunks of the same range runs, nothing validated,
  written or checked, each chunk's rows digested outside the timer and equal to the loop's: the work the loop does
  too, so the platform's time splits into what the loop does and what it does beyond it.
"""

from __future__ import annotations

import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.measure import Timer, measure, peak_rss_mb
from benchmarks.report import environment, environment_markdown

NAME = "backfill"
DATA_ROOT = Path(__file__).resolve().parent / "data"
END_DAY = date(2026, 10, 31)
LOOKBACK_DAYS = 8  # the 7-day window of the first partition, plus the day before it (closing rows)

FLOOR_SQL = """
WITH cur AS (
    SELECT * FROM read_parquet($files) WHERE event_timestamp >= $start AND event_timestamp < $end
), prev AS (
    SELECT DISTINCT user_id FROM read_parquet($files)
    WHERE event_timestamp >= $start - INTERVAL 1 DAY AND event_timestamp < $end - INTERVAL 1 DAY
), agg AS (
    SELECT user_id, count(DISTINCT session_id) AS sessions_7d, avg(duration_sec)::FLOAT AS avg_session_duration_sec,
           sum(message_count)::BIGINT AS messages_sent_7d, sum(tool_invocations)::BIGINT AS tools_used_7d,
           sum(tokens)::BIGINT AS total_tokens_7d
    FROM cur GROUP BY user_id
), mode AS (
    SELECT user_id, arg_min(model, (-n, model)) AS preferred_model
    FROM (SELECT user_id, model, count(*) AS n FROM cur WHERE model IS NOT NULL GROUP BY ALL) GROUP BY user_id
)
SELECT user_id, sessions_7d, avg_session_duration_sec, messages_sent_7d, tools_used_7d,
       coalesce(preferred_model, 'unknown') AS preferred_model, total_tokens_7d
FROM agg LEFT JOIN mode USING (user_id)
UNION ALL
SELECT user_id, 0, NULL, 0, 0, 'unknown', 0 FROM prev ANTI JOIN agg USING (user_id)
ORDER BY user_id
"""


def first_day(days: int) -> date:
    return END_DAY - timedelta(days=days - 1)


def sessions_dir(users: int, days: int, seed: int) -> Path:
    return DATA_ROOT / f"sessions-users{users}-days{days}-seed{seed}"


def ensure_sessions(users: int, days: int, seed: int, log=print) -> tuple[Path, int]:
    """The raw sessions log as one Parquet file per day (written once); returns (dir, sessions)."""
    from feature_platform.demo.generator import write_day

    path = sessions_dir(users, days, seed)
    marker = path.with_name(path.name + ".complete")
    if marker.exists():
        return path, int(marker.read_text())
    start = time.perf_counter()
    shutil.rmtree(path, ignore_errors=True)
    marker.unlink(missing_ok=True)
    total = 0
    span = [first_day(days) - timedelta(days=LOOKBACK_DAYS) + timedelta(days=i) for i in range(days + LOOKBACK_DAYS)]
    import pyarrow.parquet as pq

    for i, day in enumerate(span, 1):
        total += pq.read_metadata(write_day(path, day, users, seed)).num_rows
        if i % 60 == 0 or i == len(span):
            log(f"backfill data: {i}/{len(span)} days, {total:,} sessions, {time.perf_counter() - start:.0f}s")
    marker.write_text(str(total))
    return path, total


def _settings(home: Path, sessions: Path, days: int, per_run: int, engine: str = "pandas", compute_ahead: bool = True):
    from feature_platform.config import Settings

    return Settings.from_env({
        "FEATURE_PLATFORM_HOME": str(home), "FEATURE_PLATFORM_SESSIONS_PATH": str(sessions),
        "FEATURE_PLATFORM_PARTITIONS_START": first_day(days).isoformat(),
        "FEATURE_PLATFORM_BACKFILL_DAYS_PER_RUN": str(per_run), "FEATURE_PLATFORM_ENGINE": engine,
        "FEATURE_PLATFORM_COMPUTE_AHEAD": "1" if compute_ahead else "0",
    })


SINGLE_PASS_SQL = """
WITH ev AS (
    SELECT user_id, session_id, duration_sec, message_count, tool_invocations, model, tokens,
           CAST(event_timestamp AS DATE) AS d
    FROM read_parquet($files)
), ex AS (  -- each event in the 7 windows that hold it (i < 7) and the closing day after them (i = 7)
    SELECT ev.*, d + i AS day, i FROM ev, (SELECT range::INTEGER AS i FROM range(8)) t
    WHERE d + i BETWEEN $first AND $last
), agg AS (
    SELECT user_id, day, count(DISTINCT session_id) FILTER (WHERE i < 7) AS sessions_7d,
           (avg(duration_sec) FILTER (WHERE i < 7))::FLOAT AS avg_session_duration_sec,
           coalesce(sum(message_count) FILTER (WHERE i < 7), 0)::BIGINT AS messages_sent_7d,
           coalesce(sum(tool_invocations) FILTER (WHERE i < 7), 0)::BIGINT AS tools_used_7d,
           coalesce(sum(tokens) FILTER (WHERE i < 7), 0)::BIGINT AS total_tokens_7d
    FROM ex GROUP BY ALL
), mode AS (
    SELECT user_id, day, arg_min(model, (-n, model)) AS preferred_model
    FROM (SELECT user_id, day, model, count(*) AS n FROM ex WHERE i < 7 AND model IS NOT NULL GROUP BY ALL)
    GROUP BY ALL
)
SELECT day, user_id, sessions_7d, avg_session_duration_sec, messages_sent_7d, tools_used_7d,
       coalesce(preferred_model, 'unknown') AS preferred_model, total_tokens_7d
FROM agg LEFT JOIN mode USING (user_id, day)
"""

# What "equal" means between two paths' rows of a day: the row count, a hash of every exact column (summed, so
# row order does not matter) and the sum of the float32 mean (compared with a relative tolerance).
DIGEST_SQL = """
SELECT {day} AS day, count(*) AS n,
       sum(hash(user_id, sessions_7d, messages_sent_7d, tools_used_7d, preferred_model, total_tokens_7d))::VARCHAR AS h,
       coalesce(sum(avg_session_duration_sec::DOUBLE), 0) AS mean_sum
FROM {relation} {where} GROUP BY ALL ORDER BY 1
"""


def day_files(sessions: Path, day: date) -> list[str]:
    """The daily files the partition `day` reads: its 7-day window and the day before it (closing rows)."""
    return [str(sessions / f"{(day - timedelta(days=i)).isoformat()}.parquet") for i in range(LOOKBACK_DAYS - 1, -1, -1)]


def floor_day(con, files: list[str], day: date):
    start = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(days=7)
    return con.sql(FLOOR_SQL, params={"files": files, "start": start, "end": start + pd.Timedelta(days=7)}).to_arrow_table()


# A feature row's partition day: its timestamp is the end of that day (the next day's midnight).
FEATURE_DAY = "CAST(event_timestamp - INTERVAL 1 DAY AS DATE)"


def _check_connection():
    """A DuckDB connection for the correctness checks that run in a measured process: bounded, so a check does not
    set the process's peak."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET memory_limit = '300MB'")
    return con


def _digest_rows(rows) -> dict[str, list]:
    return {str(day): [int(n), h, float(mean)] for day, n, h, mean in rows}


def job_loop(args: dict, timer: Timer) -> dict:
    """The careful per-partition loop: each day's query reads only the 8 files its window needs."""
    import duckdb

    sessions = Path(args["sessions"])
    days = [first_day(args["days"]) + timedelta(days=i) for i in range(args["days"])]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    digests: dict[str, list] = {}
    with timer:
        for day in days:
            result = floor_day(con, day_files(sessions, day), day)
            with timer.paused():
                con.register("result", result)
                digests |= _digest_rows(con.execute(DIGEST_SQL.format(day=f"DATE '{day}'", relation="result",
                                                                      where="")).fetchall())
    return {"rows": sum(v[0] for v in digests.values()), "digests": digests,
            "threads": con.execute("SELECT current_setting('threads')").fetchone()[0]}


SINGLE_PASS_MEMORY = "8GB"


def job_single_pass(args: dict, timer: Timer) -> dict:
    """One DuckDB query for the whole range; the result kept as a table (as the loop fetches each day's)."""
    import duckdb

    sessions = Path(args["sessions"])
    first = first_day(args["days"])
    files = [str(sessions / f"{(first - timedelta(days=LOOKBACK_DAYS) + timedelta(days=i)).isoformat()}.parquet")
             for i in range(args["days"] + LOOKBACK_DAYS)]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Bounded: the year's 8x-exploded events do not fit DuckDB's default limit (80% of RAM) without being
    # killed by the benchmark's cap; past this limit its operators spill to disk.
    con.execute(f"SET memory_limit = '{SINGLE_PASS_MEMORY}'")
    con.execute(f"SET temp_directory = '{DATA_ROOT / 'duckdb-spill'}'")
    con.execute("SET preserve_insertion_order = false")
    with timer:
        con.execute(f"CREATE TABLE result AS {SINGLE_PASS_SQL}", {"files": files, "first": first, "last": END_DAY})
    digests = _digest_rows(con.execute(DIGEST_SQL.format(day="day", relation="result", where="")).fetchall())
    return {"rows": sum(v[0] for v in digests.values()), "digests": digests,
            "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
            "duckdb_memory_limit": con.execute("SELECT current_setting('memory_limit')").fetchone()[0]}


# The platform's time split: its steps (feature_platform.util.phases), and what is left of each run's wall time.
# Computing ahead (the default), `read` and `aggregate` run on the compute thread, beside the run's own steps;
# `wait_compute` is the run waiting for a chunk. Dagster's share is then the wall time the run's own steps leave.
STEPS = ("read", "aggregate", "wait_compute", "validate", "write_offline", "write_online", "checks")
COMPUTE_THREAD_STEPS = ("read", "aggregate")


def _runs_of(days: int, per_run: int) -> list[tuple[date, date]]:
    keys = list(pd.date_range(first_day(days), END_DAY, freq="D").date)
    return [(chunk[0], chunk[-1]) for chunk in (keys[i:i + per_run] for i in range(0, len(keys), per_run))]


def job_platform(args: dict, timer: Timer) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    from feature_platform.platform import FeaturePlatform
    from feature_platform.util import phases

    home = Path(args["home"])
    shutil.rmtree(home, ignore_errors=True)
    settings = _settings(home, Path(args["sessions"]), args["days"], args["per_run"], args.get("engine", "pandas"))
    platform = FeaturePlatform(settings)
    platform.apply()  # the registry exists before the backfill, as in a deployment
    platform.instance()
    runs = _runs_of(args["days"], args["per_run"])
    split = []
    with timer:
        # The runs a backfill of the range launches, one at a time, as `materialize(first, last)` runs them.
        for first, last in runs:
            before, started = phases.snapshot(), time.perf_counter()
            platform.materialize("user_activity", first, last)
            wall, after = time.perf_counter() - started, phases.snapshot()
            steps = {k: round(after["seconds"].get(k, 0) - before["seconds"].get(k, 0), 2) for k in STEPS}
            grew = {k: round(v - before["peak_growth_mb"].get(k, 0), 1) for k, v in after["peak_growth_mb"].items()
                    if v - before["peak_growth_mb"].get(k, 0) > 0}
            own = [k for k in STEPS if not (settings.compute_ahead and k in COMPUTE_THREAD_STEPS)]
            split.append({"first": first.isoformat(), "last": last.isoformat(), "wall_sec": round(wall, 2), **steps,
                          "dagster": round(wall - sum(steps[k] for k in own), 2), "peak_growth_mb": grew,
                          "peak_rss_mb": round(peak_rss_mb(), 1)})
    # The peak only grows: read now, the backfill's peak (imports included), before the verification's.
    backfill_peak = peak_rss_mb()
    return {"runs": len(runs), "split": split, "backfill_peak_rss_mb": round(backfill_peak, 1), **verify(platform, args)}


def job_engine(args: dict, timer: Timer) -> dict:
    """The platform's compute engine alone, on the same chunks its range runs compute, nothing validated, written or
    checked: the part of the platform's work that the loop does too. Each chunk's rows are digested outside the
    timer, for equality with the loop's; not computing ahead, so no chunk is computed while the timer is paused
    (with nothing else to run, computing ahead would overlap the chunks with nothing but that digest)."""
    import warnings

    warnings.filterwarnings("ignore")

    from feature_platform.platform import FeaturePlatform

    home = Path(args["home"] + "-engine")
    shutil.rmtree(home, ignore_errors=True)
    platform = FeaturePlatform(_settings(home, Path(args["sessions"]), args["days"], args["per_run"], compute_ahead=False))
    spec = platform.view("user_activity")
    con = _check_connection()
    digests: dict[str, list] = {}
    with timer:
        for first, last in _runs_of(args["days"], args["per_run"]):
            for chunk in platform.runtime.compute_chunks(spec, first, last):
                with timer.paused():
                    con.register("chunk", chunk.frame)
                    digests |= _digest_rows(con.execute(DIGEST_SQL.format(day=FEATURE_DAY, relation="chunk",
                                                                          where="")).fetchall())
                    con.unregister("chunk")
                chunk = None
    backfill_peak = peak_rss_mb()
    shutil.rmtree(home, ignore_errors=True)
    return {"rows": sum(v[0] for v in digests.values()), "digests": digests, "backfill_peak_rss_mb": round(backfill_peak, 1)}


def verify(platform, args: dict) -> dict:
    """Outside the timer: what the backfill left behind, checked against the loop and itself."""
    import dagster as dg
    from chat_activity.user_activity import SPEC

    materialized = platform.instance().get_materialized_partitions(dg.AssetKey("user_activity"))
    table = platform.settings.offline_dir / "user_activity"
    con = _check_connection()
    digests = _digest_rows(con.execute(DIGEST_SQL.format(
        day=FEATURE_DAY, relation=f"read_parquet('{table}/*.parquet')",
        where="")).fetchall())
    rng = np.random.default_rng(3)
    users = sorted({int(u) for u in rng.integers(1, args["users"] + 1, 2000)})
    newest = con.execute(
        f"SELECT * FROM read_parquet('{table}/*.parquet') WHERE user_id IN ({','.join(map(str, users))}) "
        "QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY event_timestamp DESC) = 1 ORDER BY user_id").df()
    now = pd.Timestamp(END_DAY, tz="UTC") + pd.Timedelta(days=1, hours=1)
    online = platform.online_features([f"user_activity:{f}" for f in SPEC.feature_names],
                                      [{"user_id": int(u)} for u in newest["user_id"]], with_metadata=True, now=now)
    newest_ts = pd.to_datetime(newest["event_timestamp"], utc=True).reset_index(drop=True)
    live = (now - newest_ts <= pd.Timedelta(SPEC.ttl)).to_numpy()  # older values are served as expired
    online_mismatches = 0
    for f in SPEC.feature_names:
        a, b = newest[f].astype(object).where(newest[f].notna(), None), online[f].astype(object).where(online[f].notna(), None)
        online_mismatches += sum(1 for x, y, ok in zip(a, b, live)
                                 if ok and not (x == y or (isinstance(x, float) and abs(x - y) < 1e-3)))
        online_mismatches += int((online.loc[~live, f"{f}__status"] != "expired").sum())
    online_stale = int((online["sessions_7d__event_timestamp"].reset_index(drop=True) != newest_ts).sum())
    return {
        "partitions_materialized_in_dagster": len(materialized),
        "offline_partitions": len(digests),
        "rows": sum(v[0] for v in digests.values()),
        "digests": digests,
        "online_entities_checked": len(newest),
        "online_entities_within_ttl": int(live.sum()),
        "online_value_mismatches": online_mismatches,
        "online_not_newest": online_stale,
    }


def differing_days(got: dict, want: dict) -> list[str]:
    """Days whose digests differ (count, exact-column hash, or the mean column's sum beyond float32 rounding)."""
    out = []
    for day in sorted(set(got) | set(want)):
        a, b = got.get(day), want.get(day)
        if a is None or b is None or a[0] != b[0] or a[1] != b[1] or abs(a[2] - b[2]) > 1e-6 * max(1.0, abs(b[2])):
            out.append(day)
    return out


# The jobs of one round, in this order; each round runs them all (interleaved), `repeat` rounds. The single pass's
# rounds follow them (`AFTER_ROUNDS`): its ~8 GB leave this VM slower for minutes after it exits, and between the
# others it weighed on whichever ran next (measured here, right after it: the loop 54.7 s against 49-52, the
# platform 49-52 s against 42-45), i.e. always on the platform.
ROUND_JOBS = (("loop", "job_loop"), ("platform", "job_platform"), ("engine", "job_engine"))
AFTER_ROUNDS = (("single_pass", "job_single_pass"),)
JOBS = ROUND_JOBS + AFTER_ROUNDS


def run(*, users: int, days: int, seed: int, repeat: int, per_run: int, mem_cap_mb: float, log) -> tuple[dict, str]:
    sessions, n_sessions = ensure_sessions(users, days, seed, log=log)
    results: dict = {"users": users, "days": days, "seed": seed, "sessions": n_sessions, "per_run": per_run,
                     "repeat": repeat, "environment": environment(), "order": [key for key, _ in JOBS],
                     **{key: [] for key, _ in JOBS}}
    base = {"sessions": str(sessions), "days": days, "users": users, "per_run": per_run,
            "home": str(DATA_ROOT / f"backfill-home-users{users}-days{days}")}
    reference = None  # the latest loop's result: the others must equal it

    def job(i: int, key: str, name: str) -> None:
        nonlocal reference
        m = measure(key, f"benchmarks.backfill:{name}", base, timeout_sec=1800, mem_cap_mb=mem_cap_mb).as_dict()
        if m["status"] == "ok":
            digests = m["info"].pop("digests")
            if key == "loop":
                reference = digests
            m["info"]["days_differing_from_loop"] = None if reference is None else differing_days(digests, reference)
        log(f"backfill round {i + 1}/{repeat}: {key}: {m['status']} {m['wall_sec']}s peak {m['peak_rss_mb']} MB "
            f"(wait4 {m.get('wait4_peak_rss_mb')} MB), load {m['load_1m']} {m['error'] or ''}")
        results[key].append(m)

    for jobs in (ROUND_JOBS, AFTER_ROUNDS):
        for i in range(repeat):
            for key, name in jobs:
                job(i, key, name)
    return results, render(results)


ENGINES_NAME = "backfill_engines"
ENGINE_LABELS = {"floor": "DuckDB per-partition loop, 8 files per day (compute only)",
                 "pandas": "platform, pandas engine (the default), 1 run at a time",
                 "spark": "platform, Spark engine (PySpark `local[2]`), 1 run at a time"}


def run_engines(*, users: int, days: int, seed: int, per_run: int, mem_cap_mb: float, log) -> tuple[dict, str]:
    """The same backfill with each compute engine, one run at a time, beside the DuckDB floor (one run each)."""
    from feature_platform.runtime import COMPUTE_CHUNK_DAYS

    sessions, n_sessions = ensure_sessions(users, days, seed, log=log)
    results: dict = {"users": users, "days": days, "seed": seed, "sessions": n_sessions, "per_run": per_run,
                     "chunk_days": COMPUTE_CHUNK_DAYS, "environment": environment()}
    base = {"sessions": str(sessions), "days": days, "users": users, "per_run": per_run}
    jobs = (("floor", "job_loop", {}),
            *((engine, "job_platform", {"engine": engine,
                                        "home": str(DATA_ROOT / f"backfill-{engine}-home-users{users}-days{days}")})
              for engine in ("pandas", "spark")))
    reference: dict = {}
    for key, job, extra in jobs:
        log(f"backfill engines: {key}")
        m = measure(key, f"benchmarks.backfill:{job}", base | extra, timeout_sec=3600, mem_cap_mb=mem_cap_mb)
        log(f"backfill engines: {key}: {m.status} {m.wall_sec}s peak {m.peak_rss_mb} MB {m.error or ''}")
        results[key] = m.as_dict()
        if m.status == "ok":
            digests = results[key]["info"].pop("digests")
            reference = digests if key == "floor" else reference
            results[key]["info"]["days_differing_from_loop"] = differing_days(digests, reference)
    return results, render_engines(results)


def render_engines(r: dict) -> str:
    lines = [f"## Backfill by compute engine: {r['days']} daily partitions of `user_activity` ({r['users']:,} users, "
             f"{r['sessions']:,} sessions)", "",
             "One fresh process per path, one run each (wall time of the backfill call; peak RSS of the process, "
             "imports included; the Spark engine's JVM is a child process and not in it). Embedded profile, runs of "
             f"{r['per_run']} partitions, one at a time; each result verified as in the backfill section (rows per day "
             "and three days value by value against the floor, 2,000 entities online).", "",
             "| path | wall (s) | s per partition | peak RSS (MB) | rows | vs floor | vs pandas engine | verified |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    floor, pandas_ = r.get("floor") or {}, r.get("pandas") or {}
    for key, label in ENGINE_LABELS.items():
        m = r.get(key)
        if not m or m["status"] != "ok":
            lines.append(f"| {label} | failed: {((m or {}).get('error') or 'not run')[:120]} | | | | | | |")
            continue
        i = m["info"]
        rows = i["rows"]
        vs_floor = m["wall_sec"] / floor["wall_sec"] if floor.get("status") == "ok" else float("nan")
        vs_pandas = m["wall_sec"] / pandas_["wall_sec"] if pandas_.get("status") == "ok" and key != "floor" else None
        verified = "-" if key == "floor" else (
            f"days differing from the loop: {len(i['days_differing_from_loop'])} of {i['offline_partitions']}; "
            f"online mismatches: {i['online_value_mismatches']}")
        peak = i.get("backfill_peak_rss_mb", m["peak_rss_mb"])
        lines.append(f"| {label} | {m['wall_sec']:.1f} | {m['wall_sec'] / r['days']:.2f} | {peak:,.0f} | {rows:,} | "
                     f"{vs_floor:.2f}x | {'' if vs_pandas is None else f'{vs_pandas:.2f}x'} | {verified} |")
    lines.append("")
    spark = r.get("spark") or {}
    if spark.get("status") == "ok" and pandas_.get("status") == "ok":
        ratio = spark["wall_sec"] / pandas_["wall_sec"]
        lines += [
            f"On {r['environment']['cpu_count'] if 'environment' in r else '?'} cores the Spark engine takes "
            f"{ratio:.1f}x the pandas engine's time for the same, identical year (the issue expects it to be "
            # Results recorded before the chunk length was: 16-day chunks.
            f"slower here). Where its time goes: each {r.get('chunk_days', 16)}-day chunk (`COMPUTE_CHUNK_DAYS`) is one "
            "Spark job that reads its raw days (plus the 6 days before) with the source checks as one more pass, explodes every "
            "event into the 8 days whose window or closing row it feeds (~8x its raw rows), aggregates them in "
            "one `groupBy` (the distinct count makes it a two-stage aggregation, a second shuffle) over the local shuffle "
            "partitions, then sorts and sends the chunk's rows to the run's process through Arrow, where the "
            "shared validation and writes run. The pandas engine does the same year in one vectorized pass per "
            "chunk with no shuffle and no serialization. The Spark work is spread by (entity, day) groups, so "
            "it scales with executor cores, and concurrent runs (92-day ranges) add more; the crossover is "
            "reasoned in docs/scaling-out.md (\"How the work is partitioned, and when Spark pays off\")."]
    lines.append("")
    if "environment" in r:
        lines.append(environment_markdown(r["environment"]))
    return "\n".join(lines) + "\n"


def _median(runs: list[dict]) -> dict | None:
    ok = sorted((r for r in runs if r["status"] == "ok"), key=lambda r: r["wall_sec"])
    return ok[len(ok) // 2] if ok else None


def render(r: dict) -> str:
    labels = {"loop": "DuckDB per-partition loop, 8 files per day (compute only)",
              "single_pass": "DuckDB single pass over the year (compute only, result kept as a table)",
              "platform": "platform through Dagster, 1 run at a time: compute + validate + offline + online + checks",
              "engine": "platform's compute engine alone, the same chunks (compute only, nothing written)"}
    paths = "the loop, the platform, then the platform's engine alone" if "engine" in r.get("order", []) else \
        "the loop then the platform"
    order = (f"{r['repeat']} rounds; each round runs {paths}, each in a fresh process (interleaved); "
             f"then the single pass, {r['repeat']} times (its ~8 GB leave the machine slower for minutes after it: between "
             "the others it slowed whichever ran next). " if r.get("order") else
             f"{r['repeat']} rounds; each round runs every path once, in this order, each in a fresh process (interleaved). ")
    lines = [f"## Full backfill: {r['days']} daily partitions of `user_activity` ({r['users']:,} users, "
             f"{r['sessions']:,} sessions)", "",
             order +
             "Wall = the measured call (the platform: its Dagster range runs of "
             f"{r['per_run']} partitions, one after the other, as a UI backfill launches them; embedded profile, Parquet "
             "offline, Feast SQLite online). Peak RSS: the process's `VmHWM` when the call returns (imports included), and the "
             "whole process's from `wait4` (which on Linux may carry the spawning parent's peak) (the platform's includes its verification afterwards). Load = the 1-minute "
             "load average at the start and end of each run (2 cores, shared).", "",
             "| path | min wall (s) | median wall (s) | runs: wall (s) @ load | peak RSS (MB) | wait4 peak (MB) | rows | "
             "median vs loop | every day equal to the loop's |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    loop = _median(r.get("loop", []))
    verdict = {}
    for key, label in labels.items():
        runs = r.get(key, [])
        ok = [x for x in runs if x["status"] == "ok"]
        m = _median(runs)
        if m is None:
            err = (runs[0].get("error") or "")[:120] if runs else "not run"
            lines.append(f"| {label} | failed: {err} | | | | | | | |")
            continue
        walls = "; ".join(f"{x['wall_sec']:.1f} @ {x['load_1m'][0]:.1f}-{x['load_1m'][1]:.1f}" if x["status"] == "ok"
                          else f"{x['status']}" for x in runs)
        peak = max(x["info"].get("backfill_peak_rss_mb", x["peak_rss_mb"]) for x in ok)
        wait4 = max((x.get("wait4_peak_rss_mb") or 0) for x in ok)
        ratio = m["wall_sec"] / loop["wall_sec"] if loop else float("nan")
        differing = [x["info"].get("days_differing_from_loop") for x in ok]
        equal = "(reference)" if key == "loop" else ("yes, every run" if all(d == [] for d in differing) else
                                                    f"NO: {[d[:5] if d else d for d in differing]}")
        verdict[key] = (m["wall_sec"], peak, ratio)
        lines.append(f"| {label} | {min(x['wall_sec'] for x in ok):.1f} | {m['wall_sec']:.1f} | {walls} | {peak:,.0f} | "
                     f"{wait4:,.0f} | {m['info']['rows']:,} | {ratio:.2f}x | {equal} |")
    lines.append("")
    if {"platform", "engine"} <= verdict.keys() and loop:
        # Median rounds' walls: what the platform does beyond what the loop does too (the rows), in the loop's time.
        beyond = verdict["platform"][0] - verdict["engine"][0]
        lines += [f"The same rows, computed by the platform's engine alone: {verdict['engine'][2]:.2f}x the loop. Its "
                  f"work beyond them (Pandera validation, the offline and online writes, the checks, Dagster's runs and "
                  f"event storage): {beyond:.1f} s, {beyond / loop['wall_sec']:.2f}x the loop's time.", ""]
    m = _median(r.get("platform", []))
    if m is not None:
        i = m["info"]
        lines += [f"Platform, median run: {i['runs']} Dagster runs; {i['partitions_materialized_in_dagster']} partitions "
                  f"materialized in the instance, {i['offline_partitions']} offline; online, "
                  f"{i['online_entities_checked']:,} random entities ({i['online_entities_within_ttl']:,} within the TTL, "
                  f"the others must read as expired): {i['online_value_mismatches']} mismatches, "
                  f"{i['online_not_newest']} not at their newest row.", "",
                  "Its time split per Dagster run (seconds; `read` and `aggregate` run on the compute thread, "
                  "beside the run's own steps (`FEATURE_PLATFORM_COMPUTE_AHEAD`); `waiting` = the run waiting for a "
                  "chunk; `checks` = per-partition statistics, drift and skew; `Dagster` = the rest of the run's "
                  "wall time: run and event storage, step orchestration), and the steps running when the process's "
                  "peak RSS grew:", "",
                  "| run | wall | read | aggregate | waiting | validate | write offline | write online | checks | "
                  "Dagster | peak RSS after (MB) | peak grew in |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for s in i["split"]:
            grew = ", ".join(f"{k} +{v:.0f}" for k, v in sorted(s["peak_growth_mb"].items(), key=lambda kv: -kv[1])[:3])
            lines.append(f"| {s['first']}..{s['last']} | {s['wall_sec']:.1f} | " + " | ".join(
                f"{s.get(k, 0):.1f}" for k in (*STEPS, "dagster")) + f" | {s['peak_rss_mb']:,.0f} | {grew or '-'} |")
        lines.append("")
    lines += ["| target | value | PASS/MISS |", "|---|---:|---|"]
    if "platform" in verdict:
        wall, peak, ratio = verdict["platform"]
        lines.append(f"| the year, 1 run at a time, at most 0.7x the careful loop (medians) | {ratio:.2f}x | "
                     f"{'PASS' if ratio <= 0.7 else 'MISS'} |")
        lines.append(f"| peak RSS under 600 MB | {peak:,.0f} MB | {'PASS' if peak < 600 else 'MISS'} |")
    lines.append("")
    if "environment" in r:
        lines.append(environment_markdown(r["environment"]))
    return "\n".join(lines) + "\n"
