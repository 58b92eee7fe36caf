"""`feature-platform`: the command line. It only calls the FeaturePlatform facade."""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
import time
import warnings
from datetime import datetime, timedelta, timezone

import pandas as pd

from feature_platform.errors import (
    BreakingChangeError,
    FeaturePlatformError,
    InvalidArgumentError,
    InvalidDateError,
    shorten,
)
from feature_platform.platform import FeaturePlatform
from feature_platform.versioning.deprecation import FeatureViewDeprecationWarning

DEMO_DAYS = 30
EXIT_BREAKING = 2  # plan / apply: a breaking change would be applied in place
EXIT_USAGE = 2  # argparse's status for a bad command line
_INTEGER = re.compile(r"-?[0-9]{1,30}")  # ASCII digits, bounded: int() takes other scripts' digits and '1_0'


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one bounded line: argparse would quote a huge bad value whole."""

    def error(self, message: str):
        if len(message) > 300:
            message = f"{message[:300]}...({len(message)} chars)"
        self.exit(EXIT_USAGE, f"error: {message} (`{self.prog} --help` shows the usage)\n")


def _integer(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high], the bad value quoted short."""
    def parse(text: str) -> int:
        value = int(text) if _INTEGER.fullmatch(text) else None
        if value is None or value < low or (high is not None and value > high):
            bound = f"an integer from {low} to {high}" if high is not None else (
                "a positive integer" if low == 1 else f"an integer of at least {low}")
            raise argparse.ArgumentTypeError(f"must be {bound}, not {shorten(text)}")
        return value
    return parse


def _host(text: str) -> str:
    """An argparse type: a host name or address to listen on."""
    if not text or len(text) > 255 or any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError(f"must be a host name or address, not {shorten(text)}")
    return text


def _positive_seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text) if len(text) <= 40 else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {shorten(text)}")
    return value


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")  # library deprecation chatter is not for CLI users
    warnings.filterwarnings("always", category=FeatureViewDeprecationWarning)  # ours is: a view they read
    warnings.showwarning = lambda message, *_args, **_kwargs: print(f"warning: {message}", file=sys.stderr)
    parser = _Parser(
        prog="feature-platform",
        description="Feature views declared once, materialized by Dagster, served by Feast. "
        "Configuration comes from FEATURE_PLATFORM_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate demo data, materialize the last 30 days, show one user's features")
    demo.add_argument("--days", type=_integer(1), default=DEMO_DAYS, help="daily partitions to materialize (default 30)")
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
    stream.add_argument("--rate", type=_integer(1), default=100, help="events per second (default 100)")
    stream.add_argument("--seconds", type=_positive_seconds, default=10, help="how long to run (default 10)")
    stream.add_argument("--batch-interval", type=_positive_seconds, default=1.0, help="seconds between batches (default 1)")
    stream.add_argument("--direct", action="store_true", help="use the low-latency path instead of the sensor's transport")
    stream.add_argument("--users", type=_integer(1), default=2000, help="distinct users (default 2000)")

    sub.add_parser("freshness", help="per-view data freshness against its SLA; exits 1 when any view is stale or missing")

    plan = sub.add_parser("plan", help="compare the specs in code with the registry: changes, additive or breaking, and "
                          "migration plans; exits 2 when a breaking change would be applied in place")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    sub.add_parser("apply", help="apply what `plan` shows to the registry (with history); refuses breaking changes in "
                   "place (exit 2, nothing applied)")
    remove = sub.add_parser("remove", help="delete a feature view no longer declared in code from the registry and "
                            "the online store; refused while a feature service or training set reads it")
    remove.add_argument("view", help="feature view name (e.g. user_activity), or its family with --version")
    remove.add_argument("--version", type=_integer(1), help="the version of family VIEW to remove")
    history = sub.add_parser("history", help="the registry's change history: who changed which view, when, and how")
    history.add_argument("--view", help="only this view, family or feature service")
    serve = sub.add_parser("serve", help="Feast's HTTP feature server on the platform's registry and online store "
                           "(/get-online-features, /push, /health)")
    serve.add_argument("--host", type=_host, default="127.0.0.1", help="interface to listen on (default 127.0.0.1: loopback only)")
    serve.add_argument("--port", type=_integer(1, 65535), default=6566, help="port (default 6566, Feast's)")
    serve.add_argument("--workers", type=_integer(1), default=1, help="worker processes (default 1)")
    serve.add_argument("--allow-unauthenticated", action="store_true",
                       help="listen beyond loopback without FEATURE_PLATFORM_SERVING_TOKENS_FILE (not recommended)")

    args = parser.parse_args(argv)
    try:
        platform = FeaturePlatform.from_env()
        platform.console_log_level = "CRITICAL"  # a failed run's error is printed below, on one line
        commands = {"demo": _demo, "materialize": _materialize, "online": _online, "stream": _stream,
                    "freshness": _freshness, "plan": _plan, "apply": _apply, "remove": _remove, "history": _history,
                    "serve": _serve}
        return commands[args.command](platform, args)
    except BreakingChangeError as exc:
        print(exc.plan.render() if exc.plan is not None else "", file=sys.stdout)
        print(f"error: {_redacted(exc)}", file=sys.stderr)
        return EXIT_BREAKING
    except FeaturePlatformError as exc:
        print(f"error: {_redacted(exc)}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):  # e.g. which partitions of a failed range were kept
            print(f"note: {_redacted(note)}", file=sys.stderr)
        return 1


def _redacted(exc: Exception) -> str:
    """The message without the environment's credentials (a store's error may quote its connection string)."""
    from feature_platform.config import Settings
    from feature_platform.redact import redact, secrets_of

    try:
        secrets = secrets_of(Settings.from_env())
    except ValueError:  # the configuration itself is what failed: mask what the URL/conninfo patterns find
        secrets = []
    return redact(str(exc), secrets)


def _serve(platform: FeaturePlatform, args) -> int:
    from feature_platform.serving.server import serve

    loopback = args.host in ("127.0.0.1", "::1", "localhost")
    if not loopback and not platform.settings.serving_tokens_file and not args.allow_unauthenticated:
        print(f"error: refusing to serve on --host {args.host} without authentication: set FEATURE_PLATFORM_SERVING_TOKENS_FILE "
              "(see docs/serving.md) or pass --allow-unauthenticated", file=sys.stderr)
        return 1
    if not platform.settings.serving_tokens_file:
        print("warning: no FEATURE_PLATFORM_SERVING_TOKENS_FILE: every caller may read and push", file=sys.stderr)
    print(f"{platform!r}\nserving on http://{args.host}:{args.port} (POST /get-online-features, POST /push, GET /health)",
          file=sys.stderr)
    serve(args.host, args.port, args.workers)
    return 0


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

        # Schema versioning: version 3 (one more feature) is served beside version 2, from its own table and keys.
        newer = [s for s in platform.views.values() if s.family_name == spec.family_name and s.version > spec.version]
        for version in newer:
            platform.materialize(version.name, start, end, progress=ProgressBar())
        if newer:
            print(f"\nside by side, {spec.entity.join_key}={entity}:")
            _print_side_by_side(platform, [spec, *newer], entity)

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


def _plan(platform: FeaturePlatform, args) -> int:
    the_plan = platform.plan()
    if args.json:
        import json

        print(json.dumps(the_plan.as_dict(), indent=2, default=str))
    else:
        print(the_plan.render())
    if the_plan.refused:
        print(f"error: {len(the_plan.refused)} breaking change(s) in place; `apply` would refuse them "
              "(declare a new version instead, as the migration plan shows)", file=sys.stderr)
        return EXIT_BREAKING
    return 0


def _apply(platform: FeaturePlatform, args) -> int:
    the_plan = platform.apply()
    print(the_plan.render())
    print(f"applied: {the_plan.summary()}" if the_plan.has_changes else "nothing to apply: the registry matches the code")
    return 0


def _remove(platform: FeaturePlatform, args) -> int:
    name = args.view
    if args.version is not None:
        name = platform.resolve_version(args.view, args.version)
    done = platform.remove(name)
    print(f"removed feature view {done['view']} from the registry and the online store; "
          f"its offline table is kept ({done['offline_table']})")
    return 0


def _history(platform: FeaturePlatform, args) -> int:
    frame = platform.history(args.view)
    if frame.empty:
        print("no registry changes recorded" + (f" for {args.view}" if args.view else ""))
        return 0
    for row in frame.itertuples():
        version = "" if pd.isna(row.version) else f" v{row.version}"
        print(f"{row.at:%Y-%m-%d %H:%M:%S} UTC  {row.user:<20} {row.via:<10} {row.action:<7} "
              f"{row.object}{version} ({row.classification})")
        for change in row.diff:
            print(f"    {change.get('detail') or change.get('kind')}"
                  + (f"  [{change['classification']}]" if "classification" in change else ""))
    return 0


def _duration(value) -> str:
    seconds = int(pd.Timedelta(value).total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _stamp(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M:%S}"


def _online(platform: FeaturePlatform, args) -> int:
    spec = platform.view(args.view)
    features = args.features.split(",") if args.features else spec.feature_names
    entity = args.entity
    if spec.entity.dtype == "int64":
        if not _INTEGER.fullmatch(entity.strip()):
            raise InvalidArgumentError(f"--entity must be an integer {spec.entity.join_key} for view {spec.name}, "
                                       f"not {shorten(entity)}")
        entity = int(entity)
    _print_vector(platform, spec.name, entity, features)
    return 0


def _print_side_by_side(platform: FeaturePlatform, specs, entity) -> None:
    """One entity's online values in several versions of a view, one column per version."""
    features = list(dict.fromkeys(f for s in specs for f in s.feature_names))
    refs = [f"{s.name}:{f}" for s in specs for f in s.feature_names]
    row = platform.online_features(refs, [{specs[0].entity.join_key: entity}], full_feature_names=True).iloc[0]
    width = max(len(f) for f in features)
    print(f"  {'':<{width}}  " + "".join(f"{f'{s.name} (v{s.version})':<28}" for s in specs))
    for feature in features:
        cells = []
        for s in specs:
            value = row.get(f"{s.name}__{feature}") if feature in s.feature_names else None
            cells.append("(not in this version)" if feature not in s.feature_names
                         else "—" if pd.isna(value) else str(value))
        print(f"  {feature:<{width}}  " + "".join(f"{c:<28}" for c in cells))


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
