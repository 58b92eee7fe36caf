"""`raw_<source>`: each declared source as an external asset, one daily partition per UTC day, observed.

The platform never writes a source: it observes it. An observation reads the source's time column (Parquet)
or counts rows per day (PostgreSQL) and records, per day present, a runless `AssetMaterialization` of the
external asset's partition (Dagster's way of saying "this day of the data exists") with the day's rows and a
data version, so the asset graph shows which days exist, a feature view partition whose raw days changed shows
as unsynced, and the views' automation (automation.py) sees a window's raw days complete. The `observe_sources` sensor records them as days
arrive; `FeaturePlatform.observe_sources` does it on demand. The feature views' dependency on their window
of raw days is a time-window partition mapping (feature_views.py).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta, timezone

import dagster as dg

from feature_platform.config import Settings
from feature_platform.defs.partitions import daily_partitions
from feature_platform.defs.resources import FeaturePlatformResource
from feature_platform.repo import Repository
from feature_platform.sources import reader_for
from feature_platform.sources.observe import Observation, observe
from feature_platform.spec import SourceSpec

SENSOR = "observe_sources"
OBSERVE_EVERY_SEC = 600


def raw_source_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"raw_{source}")


def build_source_spec(source: SourceSpec, settings: Settings, repo: Repository) -> dg.AssetSpec:
    where = reader_for(source, settings, repo.directory).location
    return dg.AssetSpec(
        raw_source_key(source.name),
        group_name="sources",
        partitions_def=daily_partitions(settings),
        kinds={source.kind},
        owners=[f"team:{source.owner}"] if "@" not in source.owner else [source.owner],
        description=source.description or f"Raw source {source.name!r} ({source.kind}).",
        metadata={"location": where, "timestamp_column": source.timestamp_column,
                  "columns": dg.MetadataValue.json({c.name: c.dtype for c in source.columns}),
                  **({"start": source.start.isoformat()} if source.start else {})},
    )


def observation_events(source: SourceSpec, seen: Observation, known: dict[str, int] | None = None
                       ) -> list[dg.AssetMaterialization]:
    """One observation per day present whose row count differs from `known` (day -> rows; None: every day)."""
    events = []
    for day in sorted(seen.present):
        rows = seen.rows_by_day.get(day, 0)
        if known is not None and known.get(day.isoformat()) == rows:
            continue
        events.append(dg.AssetMaterialization(
            raw_source_key(source.name), partition=day.isoformat(),
            metadata={"dagster/row_count": rows},
            tags={"dagster/data_version": _version(rows)}))
    return events


def observe_range(runtime, source: SourceSpec, first: date | None = None, last: date | None = None) -> Observation:
    """What `source` holds from `first` (default: the first partition) to `last` (default: today)."""
    s = runtime.settings
    first = first or s.partitions_start
    end = (datetime.combine(last, datetime.min.time(), tzinfo=timezone.utc) + timedelta(days=1) if last else
           datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1))
    start = datetime.combine(first, datetime.min.time(), tzinfo=timezone.utc)
    return observe(reader_for(source, s, runtime.repo.directory), start, end)


def build_source_sensor(sources: list[SourceSpec], settings: Settings) -> dg.SensorDefinition:
    """Observes every declared source read by a view; records the days whose row counts changed."""

    @dg.sensor(name=SENSOR, minimum_interval_seconds=OBSERVE_EVERY_SEC, default_status=dg.DefaultSensorStatus.RUNNING,
               asset_selection=[raw_source_key(s.name) for s in sources],
               description="Observes the raw sources: per day present, its rows and data version.")
    def _observe(context: dg.SensorEvaluationContext, platform: FeaturePlatformResource) -> dg.SensorResult:
        runtime = platform.runtime()
        known = json.loads(context.cursor) if context.cursor else {}
        events = []
        for source in sources:
            seen = observe_range(runtime, runtime.repo.source(source.name))
            events += observation_events(source, seen, known.get(source.name, {}))
            known[source.name] = {d.isoformat(): seen.rows_by_day.get(d, 0) for d in seen.present}
        return dg.SensorResult(asset_events=events, cursor=json.dumps(known))

    return _observe


def _version(rows: int) -> str:
    return hashlib.sha256(str(rows).encode()).hexdigest()[:12]
