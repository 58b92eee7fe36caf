"""FeaturePlatform: the Python API's contract (clear errors of the package's own types)."""

from datetime import date, timedelta

import pandas as pd
import pytest

import feature_platform as fp
from feature_platform.demo.generator import generate_day
from feature_platform_tests.helpers import write_sessions


@pytest.fixture
def platform(embedded_settings):
    raw = pd.concat([generate_day(date(2026, 1, d), 150) for d in range(1, 12)], ignore_index=True)
    write_sessions(embedded_settings.sessions_path, raw)
    return fp.FeaturePlatform(embedded_settings)


def test_from_env_defaults_to_embedded(monkeypatch, tmp_path):
    monkeypatch.delenv("FEATURE_PLATFORM_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    platform = fp.FeaturePlatform.from_env()
    assert platform.settings.profile == "embedded"
    assert platform.settings.home == tmp_path / ".feature_platform"


def test_materialize_a_range_then_read_offline_and_online(platform):
    days = platform.materialize("user_activity", start="2026-01-08", end="2026-01-10")
    assert days == ["2026-01-08", "2026-01-09", "2026-01-10"]
    table = platform.offline_table("user_activity", start="2026-01-09", end="2026-01-10")
    assert sorted(table["event_timestamp"].unique()) == [pd.Timestamp("2026-01-10", tz="UTC"),
                                                         pd.Timestamp("2026-01-11", tz="UTC")]
    assert len(platform.offline_table("user_activity")) > len(table)
    latest = table[table["event_timestamp"] == table["event_timestamp"].max()].head(5)
    vec = platform.online_features(["user_activity:sessions_7d"], [{"user_id": int(u)} for u in latest["user_id"]],
                                   now=pd.Timestamp("2026-01-11T12:00:00Z").to_pydatetime())
    assert list(vec.columns) == ["user_id", "sessions_7d"]
    assert vec["sessions_7d"].tolist() == latest["sessions_7d"].tolist()
    # Read today, the January values are far older than the 7-day TTL: expired, not served.
    today = platform.online_features(["user_activity:sessions_7d"], [{"user_id": int(latest["user_id"].iloc[0])}],
                                     with_metadata=True)
    assert today["sessions_7d__status"].item() == "expired"


def test_dagster_runs_are_recorded_in_the_profile_instance(platform):
    platform.materialize("user_activity", "2026-01-09")
    import dagster as dg

    instance = platform.instance()
    assert instance.get_materialized_partitions(dg.AssetKey("user_activity")) == {"2026-01-09"}
    assert (platform.settings.dagster_home / "dagster.yaml").exists()


@pytest.mark.parametrize(
    "call, error, text",
    [
        (lambda p: p.materialize("no_such_view", "2026-01-05"), fp.UnknownFeatureViewError, "unknown feature view 'no_such_view'"),
        (lambda p: p.materialize("user_activity", "2026-13-01"), fp.InvalidDateError, "not an ISO day"),
        (lambda p: p.materialize("user_activity", "2026-01-05", "2026-01-04"), fp.InvalidDateError, "is after end"),
        (lambda p: p.materialize("user_activity", "2025-12-31"), fp.InvalidDateError, "before the first partition"),
        (lambda p: p.materialize("user_activity", date.today().isoformat()), fp.InvalidDateError, "not a complete UTC day"),
        (lambda p: p.offline_table("nope"), fp.UnknownFeatureViewError, "known views: user_activity"),
        (lambda p: p.online_features(["user_activity:nope"], [{"user_id": 1}]), fp.UnknownFeatureError, "has no feature 'nope'"),
        (lambda p: p.online_features(["sessions_7d"], [{"user_id": 1}]), fp.UnknownFeatureError, "view:feature"),
        (lambda p: p.online_features("user_activity:sessions_7d", [{"user_id": 1}]), fp.UnknownFeatureError, "not a feature service"),
        (lambda p: p.online_features([], [{"user_id": 1}]), fp.UnknownFeatureError, "non-empty list"),
        (lambda p: p.online_features(["user_activity:sessions_7d"], [{"id": 1}]), fp.UnknownFeatureError, "lacks join key 'user_id'"),
    ],
)
def test_bad_input_raises_the_packages_own_errors(platform, call, error, text):
    with pytest.raises(error, match=text):
        call(platform)
    assert issubclass(error, fp.FeaturePlatformError)


def test_validation_failure_surfaces_as_validation_error(platform, monkeypatch):
    from feature_platform import pipeline

    def always_fail(spec, rows):
        return pd.DataFrame({"column": ["sessions_7d"], "check": ["forced"], "index": [0],
                             "failure_case": [1], "schema_context": ["Column"], "check_number": [0]})

    monkeypatch.setattr(pipeline, "validate", always_fail)
    with pytest.raises(fp.ValidationFailedError, match="feature view 'user_activity', partition 2026-01-09"):
        platform.materialize("user_activity", "2026-01-09")
    assert platform.offline_table("user_activity").empty


def test_unreachable_postgres_is_a_clear_error(embedded_settings):
    settings = embedded_settings.with_(profile="services", pg_port=1, pg_db="fp_unreachable")
    with pytest.raises(fp.StoreUnavailableError, match="PostgreSQL at 127.0.0.1:1"):
        fp.FeaturePlatform(settings).offline_table("user_activity")


def test_unreachable_redis_is_a_clear_error(services_settings):
    platform = fp.FeaturePlatform(services_settings.with_(redis_port=1))
    with pytest.raises(fp.StoreUnavailableError, match="Redis"):
        platform.online_features(["user_activity:sessions_7d"], [{"user_id": 1}])


def test_materialize_window_covers_lookback_days(platform):
    platform.materialize("user_activity", "2026-01-10")
    row = platform.offline_table("user_activity")
    assert row["event_timestamp"].unique().tolist() == [pd.Timestamp("2026-01-11", tz="UTC")]
    assert timedelta(days=7) == platform.view("user_activity").ttl


def test_long_ranges_read_only_each_partitions_window(platform, monkeypatch):
    """Bounded memory: a range is computed a chunk of days at a time, each chunk reading only its days'
    windows (7 days plus the day before for closing rows), never the whole range at once."""
    from feature_platform import runtime
    from feature_platform.sources.parquet import ParquetSource  # the pandas engine reads the raw events

    ranges = []
    real = ParquetSource.read

    def recording(self, start, end):
        ranges.append((start, end))
        return real(self, start, end)

    monkeypatch.setattr(ParquetSource, "read", recording)
    monkeypatch.setattr(runtime, "COMPUTE_CHUNK_DAYS", 3)
    platform.materialize("user_activity", "2026-01-05", "2026-01-11")
    assert [(end - start).days for start, end in ranges] == [3 + 7, 3 + 7, 1 + 7]
    assert [end.date().isoformat() for _, end in ranges] == ["2026-01-08", "2026-01-11", "2026-01-12"]
    assert len(platform.offline_table("user_activity", "2026-01-05", "2026-01-11").groupby("event_timestamp")) == 7

def test_offline_tables_have_one_set_of_dtypes_on_both_profiles(profile_settings, fresh_clock):
    """`offline_table` returns the offline schema's dtypes on either store (timestamps datetime64[us, UTC]: the
    precision both stores keep), for a batch view and a pushed one, empty or not."""
    from feature_platform.stores.schema import arrow_schema
    from feature_platform_tests.example_repo import get_spec
    from feature_platform_tests.helpers import event_batch

    settings = profile_settings
    write_sessions(settings.sessions_path, pd.concat([generate_day(date(2026, 1, d), 50) for d in range(1, 4)]))
    platform = fp.FeaturePlatform(settings)
    for view in ("user_activity", "user_realtime"):
        want = arrow_schema(get_spec(view), reading=True).empty_table().to_pandas().dtypes.to_dict()
        assert platform.offline_table(view).dtypes.to_dict() == want, view  # empty
    platform.materialize("user_activity", "2026-01-02", "2026-01-03")
    platform.push("user_realtime_events", event_batch([(1, 30, 2, 40, 1.5), (2, 20, 0, 0, 0.0)], fresh_clock),
                  direct=True)
    platform.ingest_pending("user_realtime_events")  # its log drained offline
    for view in ("user_activity", "user_realtime"):
        table = platform.offline_table(view)
        assert len(table) > 0
        want = arrow_schema(get_spec(view), reading=True).empty_table().to_pandas().dtypes.to_dict()
        assert table.dtypes.to_dict() == want, view
        assert str(table["event_timestamp"].dtype) == str(table["created_timestamp"].dtype) == "datetime64[us, UTC]"
