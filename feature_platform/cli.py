"""`feature-platform`: the command line. It only calls the FeaturePlatform facade."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from datetime import datetime, timedelta, timezone

import pandas as pd

from feature_platform.errors import FeaturePlatformError
from feature_platform.platform import FeaturePlatform

DEMO_DAYS = 30


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")  # library deprecation chatter is not for CLI users
    parser = argparse.ArgumentParser(
        prog="feature-platform",
        description="Feature views declared once, materialized by Dagster, served by Feast. "
        "Configuration comes from FEATURE_PLATFORM_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate demo data, materialize the last 30 days, show one user's features")
    demo.add_argument("--days", type=int, default=DEMO_DAYS, help="daily partitions to materialize (default 30)")
    demo.add_argument("--view", default="user_activity", help="feature view to materialize (default user_activity)")

    mat = sub.add_parser("materialize", help="materialize partitions of a feature view through Dagster")
    mat.add_argument("--view", required=True, help="feature view name, e.g. user_activity")
    mat.add_argument("--start", required=True, help="first partition day, YYYY-MM-DD")
    mat.add_argument("--end", help="last partition day, YYYY-MM-DD (inclusive; default: --start)")
    mat.add_argument("--with-sources", action="store_true", help="also materialize the raw source partitions")

    online = sub.add_parser("online", help="read one entity's online feature vector")
    online.add_argument("--view", required=True, help="feature view name")
    online.add_argument("--entity", required=True, help="entity key value, e.g. a user_id")
    online.add_argument("--features", help="comma-separated feature names (default: all of the view)")

    stream = sub.add_parser("stream", help="push realistic user_realtime_events at a steady rate (load generator)")
    stream.add_argument("--rate", type=int, default=100, help="events per second (default 100)")
    stream.add_argument("--seconds", type=float, default=10, help="how long to run (default 10)")
    stream.add_argument("--batch-interval", type=float, default=1.0, help="seconds between batches (default 1)")
    stream.add_argument("--direct", action="store_true", help="use the low-latency path instead of the sensor's transport")
    stream.add_argument("--users", type=int, default=2000, help="distinct users (default 2000)")

    sub.add_parser("freshness", help="per-view data freshness against its SLA; exits 1 when any view is stale or missing")

    args = parser.parse_args(argv)
    try:
        platform = FeaturePlatform.from_env()
        commands = {"demo": _demo, "materialize": _materialize, "online": _online, "stream": _stream,
                    "freshness": _freshness}
        return commands[args.command](platform, args)
    except FeaturePlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


class ProgressBar:
    """A one-line progress display on stderr, restarted for each asset."""

    def __init__(self, width: int = 30):
        self.width = width
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int, asset: str, partition: str) -> None:
        if done == 1:
            self.started = time.perf_counter()
        filled = int(self.width * done / total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.started
        sys.stderr.write(f"\r{asset:<16} [{bar}] {done}/{total} {partition} {elapsed:5.1f}s")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _demo(platform: FeaturePlatform, args) -> int:
    spec = platform.view(args.view)
    end = datetime.now(timezone.utc).date() - timedelta(days=1)
    start = end - timedelta(days=args.days - 1)
    lookback = spec.aggregation.window.days
    print(f"{platform!r}\nsessions: {platform.settings.sessions_path}")
    print(f"materializing {spec.name} for {start} .. {end} ({args.days} daily partitions) through Dagster")
    began = time.perf_counter()
    platform.materialize_sources(spec.name, start - timedelta(days=lookback), start - timedelta(days=1),
                                 progress=ProgressBar())
    platform.materialize(spec.name, start, end, with_sources=True, progress=ProgressBar())
    elapsed = time.perf_counter() - began

    table = platform.offline_table(spec.name, start, end)
    latest = table[table["event_timestamp"] == table["event_timestamp"].max()]
    active = latest.sort_values(spec.feature_names[0], ascending=False)
    entity = int(active[spec.entity.join_key].iloc[0]) if len(active) else 1
    print(f"\nonline vector of {spec.entity.join_key}={entity}:")
    _print_vector(platform, spec.name, entity, spec.feature_names)
    per_day = table.groupby("event_timestamp").size()
    print(
        f"\nsummary: {len(per_day)} partitions, {len(table):,} offline rows "
        f"({per_day.min():,}-{per_day.max():,} per day), "
        f"{int((table[spec.feature_names[0]] == 0).sum()):,} closing rows, {elapsed:.1f}s"
    )
    if args.view == "user_activity":
        from feature_platform.demo.stream import SessionSimulator

        pushed = platform.push("user_realtime_events", SessionSimulator(seed=1).events(500), direct=True)
        platform.ingest_pending("user_realtime_events")  # what the sensor does under `dagster dev`
        print(f"pushed {pushed.accepted} user_realtime events on the low-latency path (online now, offline via its log)")
        training = platform.materialize_training_set("churn_training_set")
        print(f"training set churn_training_set: {len(training):,} rows, "
              f"churned_7d rate {training['churned_7d'].mean():.1%}, "
              f"sessions_7d null rate {training['sessions_7d'].isna().mean():.1%}")
    print(f"offline: {platform.runtime.offline.kind} · online: {platform.settings.profile} profile · "
          f"state in {platform.settings.home}")
    print("next: `dagster dev` to browse the asset graph; `feature-platform online --view "
          f"{spec.name} --entity {entity}` to read it again")
    return 0


def _materialize(platform: FeaturePlatform, args) -> int:
    days = platform.materialize(args.view, args.start, args.end, with_sources=args.with_sources,
                                progress=ProgressBar())
    print(f"materialized {args.view}: {len(days)} partition(s) {days[0]} .. {days[-1]}")
    return 0


def _stream(platform: FeaturePlatform, args) -> int:
    from feature_platform.demo.stream import SessionSimulator

    simulator = SessionSimulator(n_users=args.users)
    began = time.perf_counter()
    sent = batches = rejected = 0
    deadline = began + args.seconds
    while (tick := time.perf_counter()) < deadline:
        n = max(1, round(args.rate * args.batch_interval))
        result = platform.push("user_realtime_events", simulator.events(n), direct=args.direct)
        sent, batches = sent + n, batches + 1
        rejected += result.rejected if args.direct else 0
        sys.stderr.write(f"\rstream: {sent:,} events in {batches:,} batches, {time.perf_counter() - began:5.1f}s")
        time.sleep(max(0.0, tick + args.batch_interval - time.perf_counter()))
    elapsed = time.perf_counter() - began
    sys.stderr.write("\n")
    path = ("written online, logged for the offline store (the sensor drains the log)" if args.direct
            else "landed for the sensor (dagster dev picks them up)")
    print(f"pushed {sent:,} events in {batches:,} batches over {elapsed:.1f}s ({sent / elapsed:,.0f}/s), {path}"
          + (f"; {rejected} rejected" if args.direct else ""))
    return 0


def _freshness(platform: FeaturePlatform, args) -> int:
    report = platform.freshness()
    print(f"{'view':<16} {'status':<8} {'age':>12} {'sla':>10}  {'latest partition':<16} newest offline / online")
    for r in report.itertuples():
        age = "—" if r.age is None or pd.isna(r.age) else _duration(r.age)
        print(f"{r.view:<16} {r.status:<8} {age:>12} {_duration(r.sla):>10}  {r.latest_partition or '—':<16} "
              f"{_stamp(r.newest_offline)} / {_stamp(r.newest_online)}")
    return 1 if report["status"].isin(["stale", "missing"]).any() else 0


def _duration(value) -> str:
    seconds = int(pd.Timedelta(value).total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _stamp(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M:%S}"


def _online(platform: FeaturePlatform, args) -> int:
    spec = platform.view(args.view)
    features = args.features.split(",") if args.features else spec.feature_names
    entity = int(args.entity) if spec.entity.dtype == "int64" else args.entity
    _print_vector(platform, spec.name, entity, features)
    return 0


def _print_vector(platform: FeaturePlatform, view: str, entity, features: list[str]) -> None:
    spec = platform.view(view)
    row = platform.online_features([f"{view}:{f}" for f in features], [{spec.entity.join_key: entity}],
                                   with_metadata=True).iloc[0]
    width = max(len(f) for f in features)
    for feature in features:
        stamp = row[f"{feature}__event_timestamp"]
        stamp_text = "" if pd.isna(stamp) else f"  (as of {stamp:%Y-%m-%d %H:%M} UTC)"
        value = "—" if pd.isna(row[feature]) else row[feature]
        print(f"  {feature:<{width}}  {value!s:<14} {row[f'{feature}__status']}{stamp_text}")

if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main"]
