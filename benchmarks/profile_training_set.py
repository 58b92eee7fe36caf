"""Where the platform's training-set time and memory go: `python -m benchmarks.profile_training_set [--quick]`.

On the benchmark's data and entity frame, each in a fresh process (wall time of the call, peak RSS):
the platform call; its exact SQL alone (captured from `point_in_time_join`); that SQL without the
created_timestamp dedup (QUALIFY); the hand-written baseline; and a candidate fix (feature rows
pre-filtered to each entity key's time range before the ASOF join, dedup kept). Then, in one
process, a cProfile of the platform call and DuckDB's per-operator timings of its query. Merged into
the report as section `training_set_profile`; raw profiles go to the dataset's `results/` folder.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import re
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import data, report
from benchmarks.measure import Timer, measure
from benchmarks.training_set import FEATURES, _setup, differing, duckdb_asof
from feature_platform.specs.user_activity import SPEC

NAME = "training_set_profile"
HERE = Path(__file__).resolve().parent


# --- the platform's SQL, captured -----------------------------------------------------------------

class _Recorder:
    """A DuckDB connection that remembers the statements run through it."""

    def __init__(self, con):
        self.con, self.statements = con, []

    def execute(self, sql, *args):
        self.statements.append(sql)
        return self.con.execute(sql, *args)

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
    point_in_time_join(rec, frame.head(1), [join])  # one row: just to capture the SQL
    query = rec.statements[-1]
    entities = pd.DataFrame({SPEC.entity.join_key: frame[SPEC.entity.join_key].to_numpy(),
                             "event_timestamp": frame["event_timestamp"].to_numpy(), ROW: np.arange(len(frame))})
    con.execute("SET TimeZone = 'UTC'")
    con.register("__fp_entities", entities)
    return con, query


def _without_dedup(query: str) -> str:
    return re.sub(r" QUALIFY row_number\(\) OVER \(.*?\) = 1\)", ")", query)


def _prefiltered(query: str) -> str:
    """The candidate fix: only feature rows inside some entity row's [t - ttl, t] range per key."""
    key, ttl_us = SPEC.entity.join_key, int(SPEC.ttl.total_seconds() * 1_000_000)
    ranges = (f"(SELECT \"{key}\", min(event_timestamp) - to_microseconds({ttl_us}::BIGINT) AS __lo, "
              f"max(event_timestamp) AS __hi FROM __fp_entities GROUP BY \"{key}\")")
    pruned = (f"(SELECT v.* FROM __fp_view_0 AS v SEMI JOIN {ranges} AS r ON v.\"{key}\" = r.\"{key}\" "
              f"AND v.event_timestamp BETWEEN r.__lo AND r.__hi)")
    return query.replace("FROM __fp_view_0 QUALIFY", f"FROM {pruned} QUALIFY", 1)


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


def job_baseline(args: dict, timer: Timer) -> dict:
    settings, entity_df = _setup(args)
    with timer:
        out = duckdb_asof(entity_df, settings.offline_dir / SPEC.name)
    return {"rows": len(out)}


VARIANTS = {
    "platform_call": "FeaturePlatform.training_set (as benchmarked)",
    "platform_sql": "its DuckDB query alone (+ .df())",
    "platform_sql_no_dedup": "that query without the QUALIFY created_timestamp dedup",
    "baseline": "hand-written ASOF baseline (as benchmarked)",
    "platform_sql_prefiltered": "candidate fix: dedup kept, feature rows pre-filtered per key to [min t - ttl, max t]",
}


# --- in-process breakdown -----------------------------------------------------------------------

def breakdown(ds: data.Dataset, entities: Path, out_dir: Path) -> dict:
    """cProfile of one platform call, and DuckDB's operator timings of its query."""
    from feature_platform.platform import FeaturePlatform

    settings, entity_df = _setup({"home": str(ds.home), "first_day": ds.first_day.isoformat(), "entities": str(entities)})
    fp = FeaturePlatform(settings)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    fp.training_set(entity_df, features=FEATURES)
    prof.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
    (out_dir / "platform_cprofile.txt").write_text(buf.getvalue())
    steps = {}
    for (file, _, func), (_, _, _, cum, _) in stats.stats.items():
        label = {
            "check_entity_frame": "check_entity_frame", "resolve_features": "resolve_features",
            "register_duckdb": "offline.register_duckdb", "point_in_time_join": "point_in_time_join (total)",
            "<method 'execute' of '_duckdb.DuckDBPyConnection' objects>": "DuckDB execute (join query)",
            "<method 'df' of '_duckdb.DuckDBPyRelation' objects>": "DuckDB result -> pandas (.df())",
            "<method 'df' of '_duckdb.DuckDBPyConnection' objects>": "DuckDB result -> pandas (.df())",
            "astype": "pandas astype (all calls)",
        }.get(func)
        if label and ("feature_platform" in file or func.startswith("<method") or func == "astype"):
            steps[label] = round(max(cum, steps.get(label, 0.0)), 3)
    con, query = platform_sql(settings, entity_df)
    operators = {}
    for variant, sql in (("platform", query), ("prefiltered", _prefiltered(query))):
        path = out_dir / f"duckdb_profile_{variant}.json"
        con.execute("SET enable_profiling = 'json'")
        con.execute(f"SET profiling_output = '{path}'")
        con.execute(sql).fetchall()
        con.execute("SET enable_profiling = 'no_output'") if False else con.execute("PRAGMA disable_profiling")
        operators[variant] = _top_operators(json.loads(path.read_text()))
    (out_dir / "platform_query.sql").write_text(query + ";\n\n-- candidate fix\n" + _prefiltered(query) + ";\n")
    return {"total_sec": round(total, 3), "steps_cumulative_sec": steps, "duckdb_operators": operators}


def _top_operators(profile: dict, n: int = 8) -> list[dict]:
    found = []

    def walk(node):
        name = node.get("operator_name") or node.get("operator_type")
        if name:
            found.append({"operator": name.strip(), "sec": round(float(node.get("operator_timing", 0.0)), 3),
                          "rows_out": node.get("operator_cardinality")})
        for child in node.get("children", []):
            walk(child)

    walk(profile)
    return sorted(found, key=lambda o: -o["sec"])[:n]


# --- run --------------------------------------------------------------------------------------

def run(ds: data.Dataset, entities: Path, repeat: int, log) -> tuple[dict, str]:
    out_dir = ds.home / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    base = {"home": str(ds.home), "first_day": ds.first_day.isoformat(), "entities": str(entities)}
    runs = {k: [] for k in VARIANTS}
    saved = {k: out_dir / f"profile-{k}.parquet" for k in ("platform_sql", "platform_sql_prefiltered")}
    for r in range(repeat):
        for key in VARIANTS:
            args = base | ({"save_to": str(saved[key])} if key in saved and r == 0 else {})
            m = measure(key, f"{__name__}:job_{key}", args, timeout_sec=1800, mem_cap_mb=14 * 1024)
            runs[key].append(m)
            log(f"{NAME}: {key} {r + 1}/{repeat}: {m.status} wall={m.wall_sec}s peak={m.peak_rss_mb}MB")
    a, b = pd.read_parquet(saved["platform_sql"]), pd.read_parquet(saved["platform_sql_prefiltered"])
    fix_mismatches = int(np.logical_or.reduce([differing(a[c], b[c]) for c in SPEC.feature_names]).sum())
    log(f"{NAME}: in-process breakdown")
    detail = breakdown(ds, entities, out_dir)
    summary = {k: {"median_wall_sec": round(statistics.median(m.wall_sec for m in v if m.wall_sec is not None), 3),
                   "peak_rss_mb": max(m.peak_rss_mb for m in v), "rss_before_call_mb": max(m.rss_before_mb or 0 for m in v)}
               for k, v in runs.items()}
    results = {"config": {"users": ds.users, "days": ds.days, "entity_rows": len(pd.read_parquet(entities, columns=["user_id"])),
                          "repeat": repeat},
               "variants": summary, "candidate_fix_mismatched_rows": fix_mismatches, **detail,
               "environment": report.environment(),
               "measurements": {k: [m.as_dict() for m in v] for k, v in runs.items()}}
    return results, render(results)


def render(res: dict) -> str:
    v, base = res["variants"], res["variants"]["baseline"]["median_wall_sec"]
    lines = ["## Training set profile: where the platform's time and memory go", "",
             f"Same data and entity frame as the training-set benchmark ({res['config']['users']:,} users, "
             f"{res['config']['days']} days, {res['config']['entity_rows']:,} entity rows); each variant in a fresh "
             f"process, median of {res['config']['repeat']}. Produced by `python -m benchmarks.profile_training_set`.", "",
             "| variant | median wall (s) | / baseline | peak RSS (MB) |", "|---|---:|---:|---:|"]
    for key, label in VARIANTS.items():
        x = v[key]
        lines.append(f"| {label} | {x['median_wall_sec']:.2f} | {x['median_wall_sec'] / base:.2f}x | {x['peak_rss_mb']:,.0f} |")
    lines += ["", f"The candidate fix returns the same values as the platform's query ({res['candidate_fix_mismatched_rows']} "
                  f"mismatched rows).", "", f"cProfile of one platform call ({res['total_sec']:.2f}s), cumulative seconds:", ""]
    lines += [f"- {k}: {s:.2f}" for k, s in sorted(res["steps_cumulative_sec"].items(), key=lambda kv: -kv[1])]
    for variant, ops in res["duckdb_operators"].items():
        lines += ["", f"DuckDB operators of the {variant} query (EXPLAIN ANALYZE timings, top {len(ops)}):", "",
                  "| operator | seconds | rows out |", "|---|---:|---:|"]
        lines += [f"| {o['operator']} | {o['sec']:.2f} | {o['rows_out'] if o['rows_out'] is not None else '—'} |" for o in ops]
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
