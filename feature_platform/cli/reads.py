"""Commands that read: `online`, `freshness`, `views`. The facade and pandas are imported by the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feature_platform.cli.arguments import INTEGER, add_command, add_json
from feature_platform.cli.output import duration, print_json, print_table, span
from feature_platform.errors import InvalidArgumentError, shorten

if TYPE_CHECKING:
    from feature_platform.platform import FeaturePlatform
    from feature_platform.spec import FeatureViewSpec


def register(sub) -> None:
    online = add_command(
        sub, "online", help="read one entity's online feature vector",
        description="Read one entity's features from the online store: value, status (present, missing, or "
        "expired: older than the view's TTL) and the feature timestamp.",
        examples=["--view user_activity --entity 42", "--view user_activity --entity 42 --features sessions_7d --json"])
    online.add_argument("--view", required=True, help="feature view name")
    online.add_argument("--entity", required=True, help="entity key value, e.g. a user_id")
    online.add_argument("--features", help="comma-separated feature names (default: all of the view)")
    add_json(online, "one object per feature (feature, value, status, event_timestamp)")
    online.set_defaults(run=online_command)

    freshness = add_command(
        sub, "freshness", help="per-view data freshness against its SLA; exits 1 when any view is stale or missing",
        description="Per feature view: the latest partition, the newest feature timestamp offline and online, its "
        "age against the view's freshness SLA, and a status (fresh, warn, stale, missing). Exits 1 when any view is "
        "stale or missing (for a cron job or a probe).",
        examples=["", "--json"])
    add_json(freshness, "one object per view (durations in seconds, timestamps in ISO 8601)")
    freshness.set_defaults(run=freshness_command)

    views = add_command(
        sub, "views", help="the feature views declared in code: versions, sources, entities, freshness SLA",
        description="The feature views of the feature repository (FEATURE_PLATFORM_REPO): family and version, entity and "
        "join key, source (a raw source's window aggregation or a push source), TTL, freshness SLA, features and "
        "deprecation.",
        examples=["", "--json"])
    add_json(views, "one object per view (durations in seconds)")
    views.set_defaults(run=views_command)


def online_command(platform: FeaturePlatform, args) -> int:
    spec = platform.view(args.view)
    features = args.features.split(",") if args.features else spec.feature_names
    entity = args.entity
    if spec.entity.dtype == "int64":
        if not INTEGER.fullmatch(entity.strip()):
            raise InvalidArgumentError(f"--entity must be an integer {spec.entity.join_key} for view {spec.name}, "
                                       f"not {shorten(entity)}")
        entity = int(entity)
    if args.json:
        print_json(vector_rows(platform, spec.name, entity, features))
    else:
        print_vector(platform, spec.name, entity, features)
    return 0


def vector_rows(platform: FeaturePlatform, view: str, entity, features: list[str]) -> list[dict]:
    spec = platform.view(view)
    row = platform.online_features([f"{view}:{f}" for f in features], [{spec.entity.join_key: entity}],
                                   with_metadata=True).iloc[0]
    return [{"feature": f, "value": row[f], "status": row[f"{f}__status"],
             "event_timestamp": row[f"{f}__event_timestamp"]} for f in features]


def print_vector(platform: FeaturePlatform, view: str, entity, features: list[str]) -> None:
    import pandas as pd

    width = max(len(f) for f in features)
    for row in vector_rows(platform, view, entity, features):
        stamp = row["event_timestamp"]
        stamp_text = "" if pd.isna(stamp) else f"  (as of {stamp:%Y-%m-%d %H:%M} UTC)"
        value = "—" if pd.isna(row["value"]) else row["value"]
        print(f"  {row['feature']:<{width}}  {value!s:<14} {row['status']}{stamp_text}")


def print_side_by_side(platform: FeaturePlatform, specs: list[FeatureViewSpec], entity) -> None:
    """One entity's online values in several versions of a view, one column per version."""
    import pandas as pd

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


def freshness_command(platform: FeaturePlatform, args) -> int:
    import pandas as pd

    report = platform.freshness()
    if args.json:
        print_json(report.to_dict("records"))
    else:
        print(f"{'view':<16} {'status':<8} {'age':>12} {'sla':>10}  {'latest partition':<16} newest offline / online")
        for r in report.itertuples():
            age = "—" if r.age is None or pd.isna(r.age) else duration(pd.Timedelta(r.age))
            print(f"{r.view:<16} {r.status:<8} {age:>12} {duration(pd.Timedelta(r.sla)):>10}  "
                  f"{r.latest_partition or '—':<16} {_stamp(r.newest_offline)} / {_stamp(r.newest_online)}")
    return 1 if report["status"].isin(["stale", "missing"]).any() else 0


def _stamp(value) -> str:
    import pandas as pd

    return "—" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M:%S}"


def views_command(platform: FeaturePlatform, args) -> int:
    rows = [view_row(spec) for spec in sorted(platform.views.values(), key=lambda s: (s.family_name, s.version))]
    if args.json:
        print_json(rows)
        return 0
    shown = [{**row, "features": len(row["features"]), "entity": f"{row['entity']} ({row['join_key']})",
              "deprecated": "deprecated" if row["deprecated"] else "active"} for row in rows]
    print_table(shown, [("view", "view"), ("version", "version"), ("family", "family"), ("entity", "entity"),
                        ("source", "source"), ("features", "features"), ("ttl", "ttl"),
                        ("freshness_sla", "freshness sla"), ("deprecated", "status")])
    return 0


def view_row(spec: FeatureViewSpec) -> dict:
    aggregation = spec.aggregation
    source = (f"{aggregation.source} ({span(aggregation.window)} window)" if aggregation is not None
              else f"push: {spec.push_source}")
    return {"view": spec.name, "family": spec.family_name, "version": spec.version, "entity": spec.entity.name,
            "join_key": spec.entity.join_key, "source": source,
            "source_kind": "batch" if aggregation is not None else "push",
            "window": aggregation.window if aggregation is not None else None, "ttl": spec.ttl,
            "freshness_sla": spec.freshness_sla, "features": spec.feature_names, "owner": spec.owner,
            "deprecated": spec.deprecated}
