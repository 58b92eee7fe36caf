"""Where the platform's training-set time and memory go: `python -m benchmarks.profile_training_set [--quick]`.

On the benchmark's data and entity frame, each in a fresh process (wall time of the call, peak RSS):
the platform call; its exact SQL alone (captured from `point_in_time_join`); that SQL without the
created_timestamp dedup (QUALIFY); the hand-written baseline; and a candidate fix (feature rows
pre-filtered to each entity key's time range before the ASOF join, dedup kept). Then, in one
process, the platform call's steps (time, peak RSS) and DuckDB's profile of each query. Merged into
the report as section `training_set_profile`; raw profiles go to the dataset's `results/` folder.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from chat_activity.user_activity import SPEC

from benchmarks import data, report
from benchmarks.measure import Timer, measure
from benchmarks.training_set import FEATURES, ROW, _setup, asof_query, differing, duckdb_baseline

NAME = "training_set_profile"
HERE = Path(__file__).resolve().parent


# --- the platform's SQL, captured -----------------------------------------------------------------

class _Recorder:
    """A DuckDB connection that records the join query instead of running it (other statements run)."""

    def __init__(self, con):
        self.con, self.statements = con, []

    def execute(self, sql, *args):
        if not sql.lstrip().upper().startswith("SELECT"):
            return self.con.execute(sql, *args)
        self.statements.append(sql)
        return self

    def df(self):
        from feature_platform.compute.point_in_time import ROW

        return pd.DataFrame({ROW: []})

    def register(self, *args):
        return self.con.register(*args)

    def unregister(self, *args):
        return self.con.unregister(*args)


def platform_sql(settings, entity_df: pd.DataFrame):
    """A connection prepared as `training._duckdb_join` prepares it, and the join query it runs."""
    import duckdb

    from feature_platform.compute.point_in_time import ROW, ViewJoin, point_in_time_join
    from feature_platform.runtime import Runtime

    ts = entity_df["event_timestamp"].dt.tz_convert("UTC")
    con = duckdb.connect()
    Runtime(settings).offline.register_duckdb(con, SPEC, "__fp_view_0", ts.min() - pd.Timedelta(SPEC.ttl), ts.max())
    join = ViewJoin("__fp_view_0", SPEC.entity.join_key, SPEC.ttl, tuple(SPEC.feature_names), tuple(SPEC.feature_names))
    rec = _Recorder(con)
    frame = entity_df.assign(event_timestamp=ts)
    point_in_time_join(rec, frame.head(1), [join])  # captures the SQL without running it
    query = rec.statements[-1]
    entities = pd.DataFrame({SPEC.entity.join_key: frame[SPEC.entity.join_key].to_numpy(),
                             "event_timestamp": frame["event_timestamp"].to_numpy(), ROW: np.arange(len(frame))})
    con.execute("SET TimeZone = 'UTC'")
    con.register("__fp_entities", entities)
    return con, query


def _without_dedup(query: str) -> str:
    return re.sub(r" QUALIFY row_number\(\) OVER \(.*?\) = 1\)", ")", query)


def _prefiltered(query: str) -> str:
    """The candidate fix: only feature rows inside some entity row's [t - ttl, t] range per key.

    Unchanged when the platform's query already pre-filters this way (then the variants coincide).
    """
    if "FROM __fp_entities GROUP BY" in query:
        return query
    key, ttl_us = SPEC.entity.join_key, int(SPEC.ttl.total_seconds() * 1_000_000)
    ranges = (f"(SELECT \"{key}\", min(event_timestamp) - to_microseconds({ttl_us}::BIGINT) AS __lo, "
              f"max(event_timestamp) AS __hi FROM __fp_entities GROUP BY \"{key}\")")
    pruned = (f"(SELECT v.* FROM __fp_view_0 AS v SEMI JOIN {ranges} AS r ON v.\"{key}\" = r.\"{key}\" "
              f"AND v.event_timestamp BETWEEN r.__lo AND r.__hi)")
    return re.sub(r"FROM __fp_view_0\b", f"FROM {pruned}", query, count=1)


# --- jobs (each in a fresh process) -------------------------------------------------------------

def job_platform_call(args: dict, timer: Timer) -> dict:
    from feature_platform.platform import FeaturePlatform

    settings, entity_df = _setup(args)
    fp = FeaturePlatform(settings)
    with timer:
        out = fp.training_set(entity_df, features=FEATURES)
    return {"rows": len(out)}


def _sql_job(args: dict, timer: Timer, rewrite) -> dict:
    settings, entity_df = _setup(args)
    con, query = platform_sql(settings, entity_df)
    with timer:
        out = con.execute(rewrite(query)).df()
    if args.get("save_to"):
        out.to_parquet(args["save_to"], index=False)
    return {"rows": len(out)}


def job_platform_sql(args: dict, timer: Timer) -> dict:
    return _sql_job(args, timer, lambda q: q)


def job_platform_sql_no_dedup(args: dict, timer: Timer) -> dict:
    return _sql_job(args, timer, _without_dedup)


def job_platform_sql_prefiltered(args: dict, timer: Timer) -> dict:
    return _sql_job(args, timer, _prefiltered)


def job_platform_sql_prefiltered_no_dedup(args: dict, timer: Timer) -> dict:
    return _sql_job(args, timer, lambda q: _prefiltered(_without_dedup(q)))


def job_baseline(args: dict, timer: Timer) -> dict:
    settings, entity_df = _setup(args)
    with timer:
        out = duckdb_baseline(entity_df, settings.offline_dir / SPEC.name, asof_query)
    return {"rows": len(out)}


VARIANTS = {
    "platform_call": "FeaturePlatform.training_set (as benchmarked)",
    "platform_sql": "its DuckDB query alone (+ .df())",
    "platform_sql_no_dedup": "that query without the QUALIFY created_timestamp dedup",
    "baseline": "careful ASOF baseline (as benchmarked)",
    "platform_sql_prefiltered": "candidate fix: dedup kept, feature rows pre-filtered per key to [min t - ttl, max t]",
    "platform_sql_prefiltered_no_dedup": "candidate fix without the dedup (for stores with unique (key, timestamp))",
}


# --- in-process breakdown -----------------------------------------------------------------------

class _Steps:
    """Wall time and peak RSS (sampled every 20 ms) per named step of one in-process call."""

    def __init__(self):
        self.sec: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self.stack = ["(outside steps)"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        proc = psutil.Process()
        while not self._stop.wait(0.02):
            rss = proc.memory_info().rss / 2**20
            for label in self.stack:
                self.peak_mb[label] = max(self.peak_mb.get(label, 0.0), rss)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def wrap(self, label: str, fn):
        def timed(*args, **kwargs):
            self.stack.append(label)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sec[label] = self.sec.get(label, 0.0) + time.perf_counter() - t0
                self.stack.pop()
        return timed


class _TimedDuckDB:
    """Stands in for the `duckdb` module inside feature_platform.training: times the join query and .df()."""

    def __init__(self, real, steps: _Steps):
        self.real, self.steps = real, steps

    def connect(self, *args, **kwargs):
        return _TimedConnection(self.real.connect(*args, **kwargs), self.steps)

    def __getattr__(self, name):
        return getattr(self.real, name)


class _TimedConnection:
    def __init__(self, con, steps: _Steps):
        self.con, self.steps = con, steps

    def execute(self, sql, *args):
        if not sql.lstrip().upper().startswith("SELECT"):
            return self.con.execute(sql, *args)
        return _TimedResult(self.steps.wrap("DuckDB: run the join query (execute)", self.con.execute)(sql, *args), self.steps)

    def __getattr__(self, name):
        return getattr(self.con, name)


class _TimedResult:
    def __init__(self, result, steps: _Steps):
        self.result, self.steps = result, steps

    def df(self):
        return self.steps.wrap("DuckDB: result -> pandas (.df())", self.result.df)()

    def __getattr__(self, name):
        return getattr(self.result, name)


def breakdown(ds: data.Dataset, entities: Path, out_dir: Path) -> dict:
    """Step timings and peak RSS of one platform call, and DuckDB's operator profile of each query."""
    from feature_platform import training
    from feature_platform.platform import FeaturePlatform
    from feature_platform.stores.offline_parquet import ParquetOfflineStore

    settings, entity_df = _setup({"home": str(ds.home), "first_day": ds.first_day.isoformat(), "entities": str(entities)})
    fp = FeaturePlatform(settings)
    steps = _Steps()
    patches = [
        (training, "resolve_features", "resolve_features"),
        (training, "check_entity_frame", "check_entity_frame"),
        (training, "_duckdb_join", "_duckdb_join (total)"),
        (training, "point_in_time_join", "point_in_time_join (total)"),
        (ParquetOfflineStore, "register_duckdb", "offline.register_duckdb"),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches] + [(training, "duckdb", training.duckdb)]
    try:
        for owner, name, label in patches:
            setattr(owner, name, steps.wrap(label, getattr(owner, name)))
        training.duckdb = _TimedDuckDB(training.duckdb, steps)
        with steps:
            steps.wrap("FeaturePlatform.training_set (total)", fp.training_set)(entity_df, features=FEATURES)
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
    total = steps.sec["FeaturePlatform.training_set (total)"]
    inner = sum(steps.sec.get(k, 0.0) for k in ("resolve_features", "check_entity_frame", "_duckdb_join (total)"))
    step_rows = [{"step": k, "sec": round(v, 3), "peak_rss_mb": round(steps.peak_mb.get(k, 0.0))} for k, v in steps.sec.items()]
    step_rows.append({"step": "output assembly (entity_df.copy + astype to serving dtypes)", "sec": round(total - inner, 3),
                      "peak_rss_mb": None})

    import duckdb

    con, query = platform_sql(settings, entity_df)
    con.register("entities", con.execute("SELECT * FROM __fp_entities").df())
    queries = {"platform": query, "platform_no_dedup": _without_dedup(query),
               "baseline": asof_query([str(f) for f in sorted((settings.offline_dir / SPEC.name).glob("*.parquet"))]
                                      ).replace(ROW, "__fp_row"),
               "prefiltered": _prefiltered(query), "prefiltered_no_dedup": _prefiltered(_without_dedup(query))}
    profiles = {}
    for variant, sql in queries.items():
        path = out_dir / f"duckdb_profile_{variant}.json"
        con.execute("SET enable_profiling = 'json'")
        con.execute(f"SET profiling_output = '{path}'")
        con.execute(sql).fetchall()
        con.execute("PRAGMA disable_profiling")
        profiles[variant] = _profile_summary(json.loads(path.read_text()))
    (out_dir / "platform_queries.sql").write_text("".join(f"-- {k}\n{q};\n\n" for k, q in queries.items()))
    del duckdb
    return {"steps": step_rows, "duckdb_profiles": profiles, "platform_query_prefilters": _prefiltered(query) == query}


def _profile_summary(profile: dict, n: int = 8) -> dict:
    found = []

    def walk(node):
        if node.get("name"):
            found.append({"operator": node["name"], "sec": round(float(node.get("timing", 0.0)), 3),
                          "rows_out": node.get("intermediate_rows")})
        for child in node.get("children", []):
            walk(child)

    for root in profile.get("operator", []):
        walk(root)
    system, query = profile.get("system", {}), profile.get("query", {})
    return {"total_sec": round(float(query.get("total_time", 0.0)), 3),
            "peak_buffer_memory_mb": round(system.get("peak_buffer_memory", 0) / 2**20),
            "total_memory_allocated_mb": round(system.get("total_memory_allocated", 0) / 2**20),
            "rows_scanned": query.get("total_rows_scanned"),
            "top_operators": sorted(found, key=lambda o: -o["sec"])[:n]}


# --- run --------------------------------------------------------------------------------------

def run(ds: data.Dataset, entities: Path, repeat: int, log) -> tuple[dict, str]:
    out_dir = ds.home / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = report.environment()  # before the runs: the code that is measured
    base = {"home": str(ds.home), "first_day": ds.first_day.isoformat(), "entities": str(entities)}
    runs = {k: [] for k in VARIANTS}
    saved = {k: out_dir / f"profile-{k}.parquet" for k in VARIANTS if k.startswith("platform_sql")}
    for r in range(repeat):
        for key in VARIANTS:
            args = base | ({"save_to": str(saved[key])} if key in saved and r == 0 else {})
            m = measure(key, f"{__name__}:job_{key}", args, timeout_sec=1800, mem_cap_mb=14 * 1024)
            runs[key].append(m)
            log(f"{NAME}: {key} {r + 1}/{repeat}: {m.status} wall={m.wall_sec}s peak={m.peak_rss_mb}MB")
    ref = pd.read_parquet(saved["platform_sql"])
    fix_mismatches = {}
    for key in saved:
        other = pd.read_parquet(saved[key])
        fix_mismatches[key] = int(np.logical_or.reduce([differing(ref[c], other[c]) for c in SPEC.feature_names]).sum())
    log(f"{NAME}: in-process breakdown")
    detail = breakdown(ds, entities, out_dir)
    summary = {k: {"median_wall_sec": round(statistics.median(m.wall_sec for m in v if m.wall_sec is not None), 3),
                   "peak_rss_mb": max(m.peak_rss_mb for m in v), "rss_before_call_mb": max(m.rss_before_mb or 0 for m in v)}
               for k, v in runs.items()}
    results = {"config": {"users": ds.users, "days": ds.days, "entity_rows": len(pd.read_parquet(entities, columns=["user_id"])),
                          "repeat": repeat},
               "variants": summary, "candidate_fix_mismatched_rows": fix_mismatches, **detail,
               "environment": env,
               "measurements": {k: [m.as_dict() for m in v] for k, v in runs.items()}}
    return results, render(results)


def render(res: dict) -> str:
    v, base = res["variants"], res["variants"]["baseline"]["median_wall_sec"]
    lines = [f"## {res.get('title', 'Training set profile: where the platform’s time and memory go')}", "",
             *([res["note"], ""] if res.get("note") else []),
             f"Same data and entity frame as the training-set benchmark ({res['config']['users']:,} users, "
             f"{res['config']['days']} days, {res['config']['entity_rows']:,} entity rows); each variant in a fresh "
             f"process, median of {res['config']['repeat']}. Produced by `python -m benchmarks.profile_training_set`.", "",
             "| variant | median wall (s) | / baseline | peak RSS (MB) |", "|---|---:|---:|---:|"]
    for key, label in VARIANTS.items():
        x = v[key]
        lines.append(f"| {label} | {x['median_wall_sec']:.2f} | {x['median_wall_sec'] / base:.2f}x | {x['peak_rss_mb']:,.0f} |")
    if res.get("platform_query_prefilters"):
        lines += ["", "The platform's query already pre-filters feature rows per key, so the two candidate-fix variants "
                      "run the same queries as the two above them."]
    lines += ["", "Rows differing from the platform's query: " + ", ".join(
                  f"{k} {n:,}" for k, n in res["candidate_fix_mismatched_rows"].items() if k != "platform_sql") + ".", "",
              "Steps of one platform call (in process; peak RSS sampled every 20 ms while the step ran):", "",
              "| step | seconds | peak RSS (MB) |", "|---|---:|---:|"]
    for st in sorted(res["steps"], key=lambda r: -r["sec"]):
        lines.append(f"| {st['step']} | {st['sec']:.2f} | {format(st['peak_rss_mb'], ',') if st['peak_rss_mb'] else '—'} |")
    lines += ["", "DuckDB's own profile of each query (`enable_profiling = 'json'`, same connection; operator "
                  "seconds are summed over DuckDB's threads, so they can exceed the query's total):", "",
              "| query | total (s) | peak buffer memory (MB) | memory allocated (MB) | rows scanned | top operators (s) |",
              "|---|---:|---:|---:|---:|---|"]
    for name, p in res["duckdb_profiles"].items():
        ops = ", ".join(f"{o['operator']} {o['sec']:.2f} ({o['rows_out']:,} rows)" if o["rows_out"] is not None
                        else f"{o['operator']} {o['sec']:.2f}" for o in p["top_operators"][:4])
        lines.append(f"| {name} | {p['total_sec']:.2f} | {p['peak_buffer_memory_mb']:,} | {p['total_memory_allocated_mb']:,} | "
                     f"{p['rows_scanned']:,} | {ops} |")
    lines += ["", report.environment_markdown(res["environment"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_training_set", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    users, days, rows = (2_000, 30, 5_000) if args.quick else (100_000, 365, 100_000)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", flush=True)

    ds = data.ensure_dataset(users, days, 7, log=log)
    entities = data.ensure_entity_frame(ds, rows)
    results, markdown = run(ds, entities, args.repeat, log)
    out = args.out or (HERE / "data" / "quick" if args.quick else HERE)
    report.update(out, NAME, results, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
