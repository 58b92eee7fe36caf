"""The files `feature-platform init` writes: a feature repository with one source, one entity, one view, its test
and the Dagster entry point. `$package` is the repository's (and package's) name; everything else is literal."""

from __future__ import annotations

from string import Template

SOURCE = "events"
VIEW = "user_events_7d"
DATA_DIR = "data/events"  # relative to the repository, as the source declares it

FILES: dict[str, str] = {
    "__init__.py": '''\
"""$package: a feature repository (sources, entities, feature views, feature services, training sets).

Every module-level definition of a `feature_platform.spec` type in these modules is picked up; a new view is a
new module. `definitions.py` (what Dagster loads), `tests/` and modules named `_*` are not scanned.
"""
''',
    "sources.py": '''\
"""The raw sources the views read. The platform never writes them: it reads a window of rows and observes
which days each source holds."""

from feature_platform.spec import Field, SourceSpec

EVENTS = SourceSpec(
    name="events",
    description="One row per user event, as the product logs it.",
    # Parquet files under this directory (relative to the repository; hive-style date=YYYY-MM-DD/ directories,
    # globs and s3://... URIs work too). For a PostgreSQL table instead: table="events", connection="EVENTS_DSN"
    # (the environment variable holding its libpq connection string).
    path="data/events",
    timestamp_column="event_timestamp",
    columns=(
        Field("user_id", "string", "Who did it"),
        Field("event_type", "string", "What they did", isin=("view", "buy")),
        Field("amount", "float64", "What it was worth (0 for a view)", ge=0),
    ),
)
''',
    "entities.py": '''\
"""The keys features are joined on."""

from feature_platform.spec import Entity

USER = Entity(name="user", join_key="user_id", dtype="string", description="A user of the product")
''',
    f"{VIEW}.py": '''\
"""user_events_7d: each user's events over the 7 UTC days ending with the partition day."""

from datetime import timedelta

from feature_platform.spec import Agg, FeatureViewSpec, Field, WindowAggregation

from .entities import USER

SPEC = FeatureViewSpec(
    name="user_events_7d",
    description="Each user's events over the 7 UTC days ending with the partition day.",
    entity=USER,
    fields=(
        Field("events_7d", "int64", "Events in the window", ge=0),
        Field("spend_7d", "float64", "Sum of amount in the window", ge=0),
        Field("usual_event_7d", "string", "Most frequent event type; ties: alphabetically first; 'none' when idle"),
    ),
    aggregation=WindowAggregation(
        source="events",
        timestamp_column="event_timestamp",
        window=timedelta(days=7),
        aggs=(
            Agg("events_7d", "count", "event_type"),
            Agg("spend_7d", "sum", "amount"),
            Agg("usual_event_7d", "mode", "event_type", empty="none"),
        ),
    ),
    ttl=timedelta(days=7),
    owner="$package",
    freshness_sla=timedelta(hours=26),
    version=1,
)
''',
    f"tests/test_{VIEW}.py": '''\
"""user_events_7d from a few events written here, materialized through Dagster, each value checked by hand."""

import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

import feature_platform as fp
from feature_platform.config import Settings

REPO = Path(__file__).resolve().parents[1]


def repository_with(tmp_path: Path, events: pd.DataFrame) -> Path:
    """A copy of this repository whose data/events holds `events` only (the real data is never touched). The
    copy's directory has a fresh name, so it is imported as a package of its own."""
    copy = tmp_path / f"repo_{uuid.uuid4().hex[:8]}"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns("data", "tests", "__pycache__", ".*"))
    (copy / "data" / "events").mkdir(parents=True)
    events.to_parquet(copy / "data" / "events" / "part-0.parquet", index=False)
    return copy


def test_seven_day_window_with_closing_rows(tmp_path):
    events = pd.DataFrame([
        ("ana", "view", 0.0, "2026-03-01T09:00:00"),
        ("cy", "buy", 5.0, "2026-03-01T10:00:00"),  # only in the window of 2026-03-07
        ("ana", "buy", 12.5, "2026-03-05T18:30:00"),
        ("bo", "view", 0.0, "2026-03-07T23:59:59"),  # the last second of day 2026-03-07
        ("ana", "buy", 30.0, "2026-03-08T00:00:00"),  # the first instant of day 2026-03-08
    ], columns=["user_id", "event_type", "amount", "event_timestamp"])
    events["event_timestamp"] = pd.to_datetime(events["event_timestamp"], utc=True)
    settings = Settings.from_env({
        "FEATURE_PLATFORM_HOME": str(tmp_path / "home"),  # embedded profile: every store under tmp_path
        "FEATURE_PLATFORM_PARTITIONS_START": "2026-03-01",
        "FEATURE_PLATFORM_REPO": str(repository_with(tmp_path, events)),
    })
    platform = fp.FeaturePlatform(settings)

    platform.materialize("user_events_7d", "2026-03-07", "2026-03-08")

    table = platform.offline_table("user_events_7d")
    day = {str(ts.date()): rows.set_index("user_id") for ts, rows in table.groupby("event_timestamp")}
    # Partition 2026-03-07: the window [03-01 00:00, 03-08 00:00), stamped 03-08 00:00 (when it became known).
    d7 = day["2026-03-08"]
    assert d7.loc["ana", "events_7d"] == 2 and d7.loc["ana", "spend_7d"] == 12.5
    assert d7.loc["ana", "usual_event_7d"] == "buy"  # one buy, one view: the tie goes to the first name
    assert (d7.loc["bo", "events_7d"], d7.loc["cy", "spend_7d"]) == (1, 5.0)
    # Partition 2026-03-08: [03-02, 03-09). cy's window emptied: a closing row, so nobody serves its old values.
    d8 = day["2026-03-09"]
    assert (d8.loc["ana", "events_7d"], d8.loc["ana", "spend_7d"]) == (2, 42.5)
    assert (d8.loc["cy", "events_7d"], d8.loc["cy", "spend_7d"], d8.loc["cy", "usual_event_7d"]) == (0, 0.0, "none")

    # The online store serves the newest partition, as a model would read it (`now`: within the 7-day TTL).
    online = platform.online_features(["user_events_7d:events_7d", "user_events_7d:spend_7d"],
                                      [{"user_id": "ana"}, {"user_id": "nobody"}],
                                      now=datetime(2026, 3, 9, 12, tzinfo=timezone.utc))
    assert online["spend_7d"].iloc[0] == 42.5 and pd.isna(online["spend_7d"].iloc[1])
''',
    "definitions.py": '''\
"""What Dagster loads (`dagster dev -w workspace.yaml`): this repository's sources, feature views, checks,
sensors and training sets. To put them in the same code location as other Dagster definitions:
`defs = dg.Definitions.merge(feature_platform.build_definitions(repo=...), other_defs)`."""

from pathlib import Path

import feature_platform

defs = feature_platform.build_definitions(repo=Path(__file__).parent)
''',
    "workspace.yaml": '''\
# This repository as a Dagster code location: `dagster dev -w workspace.yaml`.
load_from:
  - python_file:
      relative_path: definitions.py
      location_name: $package
''',
}


def rendered(package: str) -> dict[str, str]:
    """Each file's path (relative to the repository) and text, for the repository named `package`."""
    return {path: Template(text).substitute(package=package) for path, text in FILES.items()}
