"""Commands that do work: `demo`, `materialize`, `stream`. The facade and pandas are imported by the caller."""

from __future__ import annotations

import shlex
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from feature_platform.cli.arguments import add_command, add_json, integer, positive_seconds
from feature_platform.cli.output import ProgressBar, print_json
from feature_platform.errors import InvalidArgumentError, InvalidDateError

if TYPE_CHECKING:
    from feature_platform.platform import FeaturePlatform
    from feature_platform.spec import FeatureViewSpec

DEMO_DAYS = 30
SUMMARY_DAYS_PER_READ = 31  # the summary reads the offline table back a month at a time: memory stays bounded


def register(sub) -> None:
    demo = add_command(
        sub, "demo", help="generate demo data, materialize the last 30 days, show one user's features",
        description="Generate a seeded sessions log (unless FEATURE_PLATFORM_SESSIONS_PATH is set), materialize the "
        "last --days daily partitions of a view through Dagster, print one user's online feature vector, then "
        "(for user_activity) the newer version side by side, a push on the low-latency path and a training set.",
        examples=["", "--days 3", "--view user_activity_v3 --days 7"])
    demo.add_argument("--days", type=integer(1), default=DEMO_DAYS, help="daily partitions to materialize (default 30)")
    demo.add_argument("--view", default="user_activity", help="feature view to materialize (default user_activity)")
    demo.set_defaults(run=demo_command)

    mat = add_command(
        sub, "materialize", help="materialize partitions of a feature view through Dagster",
        description="Materialize the daily partitions --start..--end (inclusive) of a feature view through Dagster "
        "(runs of up to FEATURE_PLATFORM_BACKFILL_DAYS_PER_RUN days), then print a summary: partitions, offline rows, "
        "closing rows and time. A failing partition stops it; the partitions before it stay written.",
        examples=["--view user_activity --start 2026-01-01 --end 2026-01-31",
                  "--view user_activity --start 2026-01-01 --observe --json"])
    mat.add_argument("--view", required=True, help="feature view name, e.g. user_activity")
    mat.add_argument("--start", required=True, help="first partition day, YYYY-MM-DD")
    mat.add_argument("--end", help="last partition day, YYYY-MM-DD (inclusive; default: --start)")
    mat.add_argument("--observe", action="store_true",
                     help="observe the view's raw source first (records the days it holds in Dagster)")
    add_json(mat, "the summary")
    mat.set_defaults(run=materialize_command)

    stream = add_command(
        sub, "stream", help="push realistic user_realtime_events at a steady rate (load generator)",
        description="Push simulated user_realtime_events batches for --seconds, one batch every --batch-interval: "
        "to the sensor's transport (picked up by `dagster dev`), or with --direct on the low-latency path.",
        examples=["--rate 1000 --seconds 60", "--rate 50 --seconds 5 --direct --users 10"])
    stream.add_argument("--rate", type=integer(1), default=100, help="events per second (default 100)")
    stream.add_argument("--seconds", type=positive_seconds, default=10, help="how long to run (default 10)")
    stream.add_argument("--batch-interval", type=positive_seconds, default=1.0,
                        help="seconds between batches (default 1)")
    stream.add_argument("--direct", action="store_true",
                        help="use the low-latency path instead of the sensor's transport")
    stream.add_argument("--users", type=integer(1), default=2000, help="distinct users (default 2000)")
    stream.set_defaults(run=stream_command)


def materialize_command(platform: FeaturePlatform, args) -> int:
    began = time.perf_counter()
    progress = ProgressBar()
    if args.observe:
        platform.observe_sources(args.view)
    days = platform.materialize(args.view, args.start, args.end, progress=progress)
    summary = materialized(platform, platform.view(args.view), days, time.perf_counter() - began)
    if args.json:
        print_json(summary)
        return 0
    print(f"materialized {args.view}: {len(days)} partition(s) {days[0]} .. {days[-1]}")
    print(summary_line(summary))
    return 0


def materialized(platform: FeaturePlatform, spec: FeatureViewSpec, days: list[str], seconds: float) -> dict:
    """What the partitions `days` of `spec` hold offline: rows, rows per day, closing rows (an entity whose window
    emptied that day: every feature at its empty value), and the time it took."""
    rows, closing, per_day = 0, 0, {}
    for i in range(0, len(days), SUMMARY_DAYS_PER_READ):
        chunk = days[i:i + SUMMARY_DAYS_PER_READ]
        table = platform.offline_table(spec.name, chunk[0], chunk[-1])
        rows += len(table)
        closing += int(_closing_rows(spec, table).sum())
        # A partition's rows are stamped with its end, the next midnight (compute.window_aggregate.day_end).
        per_day |= {(stamp - timedelta(days=1)).date().isoformat(): int(n)
                    for stamp, n in table.groupby("event_timestamp").size().items()}
    counts = [per_day.get(day, 0) for day in days]
    return {"view": spec.name, "partitions": len(days), "first": days[0], "last": days[-1], "rows": rows,
            "min_rows_per_day": min(counts), "max_rows_per_day": max(counts), "closing_rows": closing,
            "seconds": round(seconds, 1)}


def summary_line(summary: dict) -> str:
    return (f"summary: {summary['partitions']} partitions, {summary['rows']:,} offline rows "
            f"({summary['min_rows_per_day']:,}-{summary['max_rows_per_day']:,} per day), "
            f"{summary['closing_rows']:,} closing rows, {summary['seconds']:.1f}s")


def _closing_rows(spec: FeatureViewSpec, table):
    """Rows whose every aggregated feature holds its empty value (0 for counts and sums, null otherwise)."""
    closing = None
    for agg in spec.aggregation.aggs:
        column = table[agg.feature]
        empty = column.isna() if agg.empty_value is None else column == agg.empty_value
        closing = empty if closing is None else closing & empty
    return closing


def demo_command(platform: FeaturePlatform, args) -> int:
    from feature_platform.cli.reads import print_side_by_side, print_vector

    spec = platform.view(args.view)
    if spec.aggregation is None:
        raise InvalidArgumentError(f"--view {spec.name} is fed by push source {spec.push_source!r}: the demo "
                                   "materializes a view computed from daily partitions (e.g. user_activity)")
    end = datetime.now(timezone.utc).date() - timedelta(days=1)
    first = platform.settings.partitions_start
    if args.days > (end - first).days + 1:  # checked before any work (and before a date could overflow)
        raise InvalidDateError(f"--days {args.days} reaches before the first partition {first} "
                               f"(FEATURE_PLATFORM_PARTITIONS_START); at most {max(0, (end - first).days + 1)}")
    start = end - timedelta(days=args.days - 1)
    lookback = spec.aggregation.window.days
    print(f"{platform!r}\nsessions: {platform.settings.sessions_path}")
    print(f"materializing {spec.name} for {start} .. {end} ({args.days} daily partitions) through Dagster")
    began = time.perf_counter()
    if platform.settings.uses_generated_sessions:  # the example's raw log: generated, then observed
        from feature_platform.demo.generator import generate_sessions

        generate_sessions(platform.settings, start - timedelta(days=lookback), end, progress=ProgressBar())
    platform.observe_sources(spec.name)
    days = platform.materialize(spec.name, start, end, progress=ProgressBar())
    elapsed = time.perf_counter() - began

    table = platform.offline_table(spec.name, start, end)
    latest = table[table["event_timestamp"] == table["event_timestamp"].max()]
    active = latest.sort_values(spec.feature_names[0], ascending=False)
    entity = int(active[spec.entity.join_key].iloc[0]) if len(active) else 1
    print(f"\nonline vector of {spec.entity.join_key}={entity}:")
    print_vector(platform, spec.name, entity, spec.feature_names)
    print("\n" + summary_line(materialized(platform, spec, days, elapsed)))
    if args.view == "user_activity":
        from feature_platform.demo.stream import SessionSimulator

        # Schema versioning: version 3 (one more feature) is served beside version 2, from its own table and keys.
        newer = [s for s in platform.views.values() if s.family_name == spec.family_name and s.version > spec.version]
        for version in newer:
            platform.materialize(version.name, start, end, progress=ProgressBar())
        if newer:
            print(f"\nside by side, {spec.entity.join_key}={entity}:")
            print_side_by_side(platform, [spec, *newer], entity)

        pushed = platform.push("user_realtime_events", SessionSimulator(seed=1).events(500), direct=True)
        platform.ingest_pending("user_realtime_events")  # what the sensor does under `dagster dev`
        print(f"pushed {pushed.accepted} user_realtime events on the low-latency path (online now, offline via its log)")
        training = platform.materialize_training_set("churn_training_set")
        print(f"training set churn_training_set: {len(training):,} rows, "
              f"churned_7d rate {training['churned_7d'].mean():.1%}, "
              f"sessions_7d null rate {training['sessions_7d'].isna().mean():.1%}")
    print(f"offline: {platform.runtime.offline.kind} · online: {platform.settings.profile} profile · "
          f"state in {platform.settings.home}")
    # `dagster dev` shows these runs and partitions only with this instance (run it with the same FEATURE_PLATFORM_*
    # variables); without DAGSTER_HOME it would use the repository's dagster.yaml, i.e. the default home.
    print(f"next: `DAGSTER_HOME={shlex.quote(str(platform.dagster_home()))} dagster dev -m feature_platform.definitions` "
          "(with the same FEATURE_PLATFORM_* variables) to browse the asset graph, these runs and partitions; "
          f"`feature-platform online --view {spec.name} --entity {entity}` to read it again")
    return 0


def stream_command(platform: FeaturePlatform, args) -> int:
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
