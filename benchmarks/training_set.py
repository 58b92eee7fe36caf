"""Benchmark: a point-in-time training set over the `user_activity` offline table, four ways.

(a) Feast `get_historical_features(...).to_df()` on the embedded profile (file/dask offline store),
(b) the platform, `FeaturePlatform(settings).training_set(entity_df, features)`,
(c) careful DuckDB ASOF: an ASOF join over the partition files the entity times can see, the feature rows
    pre-filtered per key to [its earliest t - ttl, its latest t],
(d) careful DuckDB hash join: each entity row's candidate partition timestamps (the midnights within its
    TTL) joined on (key, timestamp), the latest kept; the best plan for a daily view.
Each run is a fresh process (see `measure`). (b) must return every input row, equal to (c) and (d).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from chat_activity.user_activity import SPEC

from benchmarks.data import Dataset
from benchmarks.measure import Measurement, Timer, measure
from benchmarks.report import environment, environment_markdown

NAME = "training_set"
FEATURES = [f"{SPEC.name}:{f}" for f in SPEC.feature_names]
ROW = "__bench_row"  # row number given to Feast, which may drop and reorder rows
PATHS = {"feast": "Feast get_historical_features", "platform": "platform training_set",
         "duckdb_asof": "DuckDB ASOF, pre-filtered per key (careful)",
         "duckdb_hash": "DuckDB hash join on (key, partition timestamp) (careful)"}
BASELINES = ("duckdb_asof", "duckdb_hash")
TARGETS = {"platform_over_best_duckdb_max": 0.8, "feast_over_platform_min": 5.0, "platform_peak_rss_mb_max": 500.0}


# --- jobs (run in the measured child process) ------------------------------------------------

def _setup(args: dict):
    from datetime import date

    from benchmarks.data import settings_for

    settings = settings_for(Path(args["home"]), date.fromisoformat(args["first_day"]))
    return settings, pd.read_parquet(args["entities"])


def job_feast(args: dict, timer: Timer) -> dict:
    from feature_platform.runtime import Runtime

    settings, entity_df = _setup(args)
    rt = Runtime(settings)
    rt.apply()
    frame = entity_df.assign(**{ROW: np.arange(len(entity_df))})
    with timer:
        out = rt.feast.get_historical_features(entity_df=frame, features=FEATURES).to_df()
    _save(out[[ROW, *SPEC.feature_names]], args)
    return {"rows": len(out), "distinct_input_rows": int(out[ROW].nunique())}


def job_platform(args: dict, timer: Timer) -> dict:
    from feature_platform.platform import FeaturePlatform

    settings, entity_df = _setup(args)
    fp = FeaturePlatform(settings)
    with timer:
        out = fp.training_set(entity_df, features=FEATURES)
    _save(out, args)
    return {"rows": len(out)}


def job_duckdb_asof(args: dict, timer: Timer) -> dict:
    return _job_duckdb(args, timer, asof_query)


def job_duckdb_hash(args: dict, timer: Timer) -> dict:
    return _job_duckdb(args, timer, hash_join_query)


def _job_duckdb(args: dict, timer: Timer, query: Callable[[list[str]], str]) -> dict:
    settings, entity_df = _setup(args)
    table = settings.offline_dir / SPEC.name
    with timer:
        out = duckdb_baseline(entity_df, table, query)
    _save(out, args)
    return {"rows": len(out)}


def _save(frame: pd.DataFrame, args: dict) -> None:
    if args.get("save_to"):
        frame.to_parquet(args["save_to"], index=False)


def duckdb_baseline(entity_df: pd.DataFrame, table_dir: Path, query: Callable[[list[str]], str]) -> pd.DataFrame:
    """A baseline: the entity frame with the feature columns `query` computes, entity order kept. Only the
    partition files some entity time can see are read (their names are their days)."""
    import duckdb

    ts = entity_df["event_timestamp"]
    first, last = (ts.min() - SPEC.ttl).date() - timedelta(days=1), ts.max().date()
    files = [str(f) for f in sorted(table_dir.glob("*.parquet")) if first <= date.fromisoformat(f.stem) <= last]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("entities", entity_df[["user_id", "event_timestamp"]].assign(**{ROW: np.arange(len(entity_df))}))
        values = con.execute(query(files)).df()
    finally:
        con.close()
    out = entity_df.copy()
    for c in SPEC.feature_names:
        out[c] = values[c].to_numpy()
    return out


def _files_sql(files: list[str]) -> str:
    return "read_parquet([" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "])"


def asof_query(files: list[str]) -> str:
    """ASOF LEFT JOIN, feature rows pre-filtered per key to what its entity rows can see (one row per (user,
    feature timestamp) is guaranteed by the data: one file per day, one row per user in each)."""
    assert SPEC.ttl.total_seconds() % 86400 == 0
    ttl = f"INTERVAL {int(SPEC.ttl.days)} DAY"
    feats = ", ".join(f'f."{c}"' for c in SPEC.feature_names)
    cols = ", ".join(f'CASE WHEN e.event_timestamp - f.event_timestamp <= {ttl} THEN f."{c}" END AS "{c}"'
                     for c in SPEC.feature_names)
    return (f"WITH b AS (SELECT user_id, min(event_timestamp) - {ttl} AS lo, max(event_timestamp) AS hi "
            f"FROM entities GROUP BY user_id), "
            f"f AS (SELECT f.user_id, f.event_timestamp, {feats} FROM {_files_sql(files)} AS f "
            f"JOIN b ON f.user_id = b.user_id AND f.event_timestamp BETWEEN b.lo AND b.hi) "
            f"SELECT e.{ROW}, {cols} FROM entities AS e "
            f"ASOF LEFT JOIN f ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp "
            f"ORDER BY e.{ROW}")


def hash_join_query(files: list[str]) -> str:
    """Each entity row's candidate feature timestamps are the midnights within its TTL (a daily view's
    partition timestamps): a hash join on (user, timestamp), the latest match kept."""
    days = SPEC.ttl.days + 1
    ttl = f"INTERVAL {int(SPEC.ttl.days)} DAY"
    feats = ", ".join(f'f."{c}"' for c in SPEC.feature_names)
    picked = ", ".join(f'm."{c}"' for c in SPEC.feature_names)
    return (f"WITH c AS (SELECT e.{ROW}, e.user_id, date_trunc('day', e.event_timestamp) - to_days(d.n::INTEGER) "
            f"AS ts FROM entities AS e, range({days}) AS d(n) "
            f"WHERE e.event_timestamp - (date_trunc('day', e.event_timestamp) - to_days(d.n::INTEGER)) <= {ttl}), "
            f"m AS (SELECT c.{ROW}, {feats} FROM c JOIN {_files_sql(files)} AS f "
            f"ON f.user_id = c.user_id AND f.event_timestamp = c.ts "
            f"QUALIFY row_number() OVER (PARTITION BY c.{ROW} ORDER BY c.ts DESC) = 1) "
            f"SELECT e.{ROW}, {picked} FROM entities AS e "
            f"LEFT JOIN m ON e.{ROW} = m.{ROW} ORDER BY e.{ROW}")


# --- comparison ---------------------------------------------------------------------------------

def differing(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Mask of positions where `a` and `b` differ (both null = equal; numbers to float32 precision)."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    a_na, b_na = a.isna().to_numpy(), b.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(a.dtype) and pd.api.types.is_numeric_dtype(b.dtype):
        differ = ~np.isclose(a.to_numpy(dtype="float64", na_value=np.nan), b.to_numpy(dtype="float64", na_value=np.nan),
                             rtol=1e-6, atol=0.0)
    else:
        differ = a.astype(object).to_numpy() != b.astype(object).to_numpy()
    return (a_na != b_na) | (~a_na & ~b_na & differ)


def compare(left: pd.DataFrame, right: pd.DataFrame) -> dict:
    """Mismatch counts of the feature columns of two row-aligned frames."""
    masks = {c: differing(left[c], right[c]) for c in SPEC.feature_names}
    return {"rows_compared": len(left), "mismatched_rows": int(np.logical_or.reduce(list(masks.values())).sum()),
            "mismatches_per_column": {c: int(m.sum()) for c, m in masks.items()}}


# --- the benchmark ------------------------------------------------------------------------------

def run(ds: Dataset, entities: Path, *, repeat: int, feast_timeout_sec: float, mem_cap_mb: float,
        work_dir: Path, log: Callable[[str], None] = print, skip_feast: bool = False) -> tuple[dict, str]:
    """Measure the three paths `repeat` times each; returns (results, markdown)."""
    env = environment()  # before the runs: the code that is measured
    n_input = len(pd.read_parquet(entities, columns=["user_id"]))
    work_dir.mkdir(parents=True, exist_ok=True)
    base = {"home": str(ds.home), "first_day": ds.first_day.isoformat(), "entities": str(entities)}
    saved = {k: work_dir / f"{NAME}-{k}.parquet" for k in PATHS}
    runs: dict[str, list[Measurement]] = {k: [] for k in PATHS}

    def one(key: str, r: int, timeout: float) -> Measurement:
        args = base | ({"save_to": str(saved[key])} if r == 0 else {})
        m = measure(key, f"{__name__}:job_{key}", args, timeout_sec=timeout, mem_cap_mb=mem_cap_mb)
        runs[key].append(m)
        log(f"{NAME}: {key} run {r + 1}/{repeat}: {m.status} wall={m.wall_sec}s peak={m.peak_rss_mb}MB "
            f"rows={m.info.get('rows')}" + (f" — {m.error.splitlines()[0]}" if m.error else ""))
        if m.status == "error":
            log(m.error)
        return m

    for key in PATHS:
        saved[key].unlink(missing_ok=True)
    for r in range(repeat):  # interleaved, so drift hits them alike
        for key in ("platform", *BASELINES):
            one(key, r, timeout=max(feast_timeout_sec, 600))
    if not skip_feast:
        for r in range(repeat):
            if one("feast", r, timeout=feast_timeout_sec).status != "ok":
                log(f"{NAME}: feast did not finish; not repeating it")
                break

    summary = {k: _summary(v, n_input) for k, v in runs.items()}
    checks = _checks(saved, n_input)
    ratios = _ratios(summary, feast_timeout_sec)
    targets = _targets(summary, ratios)
    results = {
        "description": __doc__.strip().splitlines()[0],
        "features": FEATURES,
        "config": {"users": ds.users, "days": ds.days, "seed": ds.seed, "entity_rows": n_input, "repeat": repeat,
                   "feast_timeout_sec": feast_timeout_sec, "mem_cap_mb": mem_cap_mb},
        "data": ds.info | {"first_day": ds.first_day.isoformat(), "last_day": ds.last_day.isoformat()},
        "environment": env,
        "summary": summary,
        "ratios": ratios,
        "targets": targets,
        "checks": checks,
        "measurements": {k: [m.as_dict() for m in v] for k, v in runs.items()},
    }
    return results, render(results)


def _summary(ms: list[Measurement], n_input: int) -> dict:
    ok = [m for m in ms if m.status == "ok"]
    walls = [m.wall_sec for m in ok]
    peaks = [m.peak_rss_mb for m in ms if m.peak_rss_mb is not None]
    return {
        "runs": len(ms),
        "runs_ok": len(ok),
        "status": "ok" if ms and len(ok) == len(ms) else (ms[-1].status if ms else "not run"),
        "median_wall_sec": round(statistics.median(walls), 3) if walls else None,
        "min_wall_sec": round(min(walls), 3) if walls else None,
        "peak_rss_mb": max(peaks) if peaks else None,
        "rss_before_call_mb": max(m.rss_before_mb for m in ok) if ok else None,
        "rows": ok[0].info.get("rows") if ok else None,
        "input_rows": n_input,
        "killed_after_sec": max((m.elapsed_sec for m in ms if m.status in ("timeout", "memory_cap")), default=None),
        "error": next((m.error for m in ms if m.error), None),
    }


def _best_baseline(s: dict) -> str | None:
    done = [k for k in BASELINES if s[k]["median_wall_sec"]]
    return min(done, key=lambda k: s[k]["median_wall_sec"]) if done else None


def _ratios(s: dict, feast_timeout_sec: float) -> dict:
    best = _best_baseline(s)
    p, f = s["platform"]["median_wall_sec"], s["feast"]["median_wall_sec"]
    out = {"best_baseline": best, "feast_over_platform": None, "feast_over_platform_is_lower_bound": False,
           **{f"platform_over_{k}": round(p / s[k]["median_wall_sec"], 3) if p and s[k]["median_wall_sec"] else None
              for k in BASELINES}}
    out["platform_over_best_duckdb"] = out[f"platform_over_{best}"] if best else None
    if p and f:
        out["feast_over_platform"] = round(f / p, 2)
    elif p and s["feast"]["status"] == "timeout":  # Feast took at least the timeout
        out["feast_over_platform"] = round(feast_timeout_sec / p, 2)
        out["feast_over_platform_is_lower_bound"] = True
    return out


def _targets(s: dict, r: dict) -> list[dict]:
    def verdict(value, ok):
        return None if value is None else bool(ok)

    pod, fop, rss = r["platform_over_best_duckdb"], r["feast_over_platform"], s["platform"]["peak_rss_mb"]
    best = PATHS.get(r["best_baseline"], "—")
    return [
        {"name": f"platform at most 0.8x the faster careful DuckDB plan ({best})", "metric": "platform/best median wall",
         "value": pod, "target": f"<= {TARGETS['platform_over_best_duckdb_max']}",
         "pass": verdict(pod, pod is not None and pod <= TARGETS["platform_over_best_duckdb_max"])},
        {"name": "platform at least 5x faster than Feast", "metric": "feast/platform median wall", "value": fop,
         "lower_bound": r["feast_over_platform_is_lower_bound"],
         "target": f">= {TARGETS['feast_over_platform_min']}", "pass": verdict(fop, fop is not None and fop >= TARGETS["feast_over_platform_min"])},
        {"name": "platform peak RSS < 500 MB", "metric": "platform peak RSS MB (max over runs)", "value": rss,
         "target": f"< {TARGETS['platform_peak_rss_mb_max']:.0f}", "pass": verdict(rss, rss is not None and rss < TARGETS["platform_peak_rss_mb_max"])},
    ]


def _checks(saved: dict[str, Path], n_input: int) -> dict:
    out: dict = {}
    if saved["platform"].exists():
        platform = pd.read_parquet(saved["platform"])
        out["platform_rows_equal_input"] = len(platform) == n_input
        feats = platform[SPEC.feature_names]
        out["platform_rows_without_features"] = int(feats.isna().all(axis=1).sum())
        for key in BASELINES:
            if saved[key].exists():
                duck = pd.read_parquet(saved[key])
                out[f"platform_vs_{key}"] = compare(platform, duck) | {"duckdb_rows": len(duck)}
        if saved["feast"].exists():
            feast = pd.read_parquet(saved["feast"])
            kept = feast[ROW].to_numpy()
            out["feast_rows"] = len(feast)
            dropped = np.setdiff1d(np.arange(n_input), kept)
            out["feast_dropped_rows"] = len(dropped)
            out["feast_dropped_rows_without_features_in_platform"] = int(feats.iloc[dropped].isna().all(axis=1).sum())
            out["feast_vs_platform_on_kept_rows"] = compare(
                feast.reset_index(drop=True), platform.iloc[kept].reset_index(drop=True))
    return out


# --- markdown -----------------------------------------------------------------------------------

def _fmt(v, spec="{:,.3f}") -> str:
    return "—" if v is None else spec.format(v)


def _load_range(res: dict) -> str:
    loads = [x for ms in res["measurements"].values() for m in ms if m.get("load_1m") for x in m["load_1m"]]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "not recorded"


def _min_ratio(s: dict, baseline: str) -> float | None:
    p, b = s["platform"]["min_wall_sec"], s[baseline]["min_wall_sec"]
    return round(p / b, 3) if p and b else None


def render(res: dict) -> str:
    s, r, c, cfg, data = res["summary"], res["ratios"], res["checks"], res["config"], res["data"]
    lines = [
        f"## Training set: point-in-time join of {cfg['entity_rows']:,} entity rows (`{SPEC.name}`, "
        f"{len(SPEC.feature_names)} features)",
        "",
        f"Entity frame: {cfg['entity_rows']:,} rows (random users, timestamps over the last ~330 days). "
        f"Offline table: {data['offline_rows']:,} rows in {cfg['days']} daily Parquet partitions "
        f"({data['first_day']} .. {data['last_day']}, {data['offline_bytes'] / 2**20:,.0f} MB), "
        f"from {data['raw_events']:,} generated sessions of {cfg['users']:,} users (seed {cfg['seed']}). "
        f"Each run is a fresh process; wall time covers only the call, peak RSS is the whole process "
        f"(`VmHWM`, imports included). {cfg['repeat']} runs per path; 1-minute load average during the "
        f"runs: {_load_range(res)} (on {res['environment']['cpu_count']} CPUs; other work on the machine slows every path).",
        "",
        "| path | median wall (s) | min wall (s) | peak RSS (MB) | RSS before call (MB) | rows returned / input | runs ok |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in PATHS.items():
        x = s[key]
        rows = f"{x['rows']:,} / {x['input_rows']:,}" if x["rows"] is not None else "—"
        note = ""
        if x["status"] in ("timeout", "memory_cap"):
            note = f" ({x['status'].replace('_', ' ')}: {x['error']})"
        elif x["status"] == "error":
            note = " (error, see results.json)"
        lines.append(f"| {label}{note} | {_fmt(x['median_wall_sec'])} | {_fmt(x['min_wall_sec'])} | "
                     f"{_fmt(x['peak_rss_mb'], '{:,.0f}')} | {_fmt(x['rss_before_call_mb'], '{:,.0f}')} | {rows} | "
                     f"{x['runs_ok']}/{x['runs']} |")
    fop = _fmt(r["feast_over_platform"], "{:,.2f}") + (" (lower bound: Feast timed out)" if r["feast_over_platform_is_lower_bound"] else "")
    lines += ["", f"Ratios (median wall): platform / careful ASOF = **{_fmt(r['platform_over_duckdb_asof'], '{:.2f}')}**, "
                  f"platform / careful hash join = **{_fmt(r['platform_over_duckdb_hash'], '{:.2f}')}**, "
                  f"Feast / platform = **{fop}**. By min wall: platform / careful ASOF = "
                  f"{_fmt(_min_ratio(s, 'duckdb_asof'), '{:.2f}')}, platform / careful hash join = "
                  f"{_fmt(_min_ratio(s, 'duckdb_hash'), '{:.2f}')} (the targets are judged on the medians; on a loaded "
                  "machine the two can disagree).", "",
              "| target | value | PASS/MISS |", "|---|---:|---|"]
    for t in res["targets"]:
        value = _fmt(t["value"], "{:,.0f} MB" if "RSS" in t["metric"] else "{:,.2f}x") + (" (lower bound)" if t.get("lower_bound") else "")
        verdict = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "MISS")
        lines.append(f"| {t['name']} ({t['metric']} {t['target']}) | {value} | {verdict} |")
    lines += ["", "Checks:"]
    if "platform_rows_equal_input" in c:
        lines.append(f"- platform returned {'every' if c['platform_rows_equal_input'] else 'NOT every'} input row, "
                     f"in order ({c['platform_rows_without_features']:,} rows have no feature row within the 7-day TTL).")
    for key in BASELINES:
        if f"platform_vs_{key}" in c:
            v = c[f"platform_vs_{key}"]
            lines.append(f"- platform vs {PATHS[key]}: {v['mismatched_rows']:,} mismatched rows of {v['rows_compared']:,}"
                         + ("" if not v["mismatched_rows"] else f" (per column: {v['mismatches_per_column']})") + ".")
    if "feast_rows" in c:
        v = c["feast_vs_platform_on_kept_rows"]
        lines.append(f"- Feast returned {c['feast_rows']:,} rows for {cfg['entity_rows']:,} input rows "
                     f"({c['feast_dropped_rows']:,} input rows dropped, of which "
                     f"{c['feast_dropped_rows_without_features_in_platform']:,} have no feature row within the TTL "
                     f"in the platform's output); on the rows it kept, "
                     f"{v['mismatched_rows']:,} differ from the platform.")
    lines += ["", environment_markdown(res["environment"])]
    return "\n".join(lines)
