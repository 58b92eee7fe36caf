"""user_activity as a Dagster asset, end to end through `materialize()`, on both profiles.

Each test runs on the embedded profile (Parquet + Feast SQLite) and on the services profile
(PostgreSQL + Feast Redis, real connections).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone

import dagster as dg
import pandas as pd
import pytest
from chat_activity.user_activity import SPEC

from feature_platform.compute.window_aggregate import aggregate_day
from feature_platform.definitions import build_definitions
from feature_platform.defs.feature_views import PANDERA_CHECK, build_feature_view_asset
from feature_platform.defs.resources import resources_for
from feature_platform.demo.generator import generate_day
from feature_platform.errors import AggregationOverflowError
from feature_platform.platform import FeaturePlatform
from feature_platform.spec import Field
from feature_platform_tests.example_repo import build_raw_sessions_asset
from feature_platform_tests.helpers import write_sessions

FEATURES = [f"user_activity:{f}" for f in SPEC.feature_names]
DAYS = [date(2026, 2, d) for d in range(1, 21)]


@pytest.fixture
def settings(profile_settings):
    s = profile_settings
    raw = pd.concat([generate_day(d, 300, seed=3) for d in DAYS], ignore_index=True)
    write_sessions(s.sessions_path, raw)
    return s


def run(settings, day: str, assets=None, instance=None):
    assets = assets or list(build_definitions(settings).assets)
    return dg.materialize(
        assets, selection=[dg.AssetKey("user_activity")], partition_key=day, instance=instance,
        resources=resources_for(settings), raise_on_error=False,
    )


def expected(settings, day: date) -> pd.DataFrame:
    raw = pd.read_parquet(settings.sessions_path)
    return aggregate_day(SPEC, raw, day)


def offline(settings, day: date | None = None) -> pd.DataFrame:
    return FeaturePlatform(settings).offline_table("user_activity", day, day)


def online(settings, users, now=None) -> pd.DataFrame:
    return FeaturePlatform(settings).online_features(FEATURES, [{"user_id": int(u)} for u in users],
                                                       with_metadata=True, now=now)


def test_partition_writes_offline_online_metadata_and_check(settings):
    with dg.instance_for_test() as instance:
        result = run(settings, "2026-02-12", instance=instance)
        assert result.success
        (mat,) = result.get_asset_materialization_events()
        assert mat.partition == "2026-02-12"
        md = mat.materialization.metadata
        want = expected(settings, date(2026, 2, 12))
        assert md["dagster/row_count"].value == len(want) > 0
        assert md["rows_written_online"].value == len(want)
        assert md["closing_rows"].value == int((want["sessions_7d"] == 0).sum()) > 0
        assert md["null_counts"].value["avg_session_duration_sec"] == int(want["avg_session_duration_sec"].isna().sum())
        assert md["sessions_7d.max"].value == want["sessions_7d"].max()
        assert md["total_tokens_7d.mean"].value == pytest.approx(want["total_tokens_7d"].mean())
        assert md["duration_sec"].value > 0
        assert [c.name for c in md["dagster/column_schema"].schema.columns][:2] == ["user_id", "sessions_7d"]
        (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == PANDERA_CHECK]
        assert check.check_name == PANDERA_CHECK and check.passed and check.partition == "2026-02-12"

    got = offline(settings, date(2026, 2, 12))
    cols = ["user_id", *SPEC.feature_names, "event_timestamp"]
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), want[cols], check_dtype=False)
    assert got["created_timestamp"].notna().all()

    vec = online(settings, want["user_id"].head(50), now=datetime(2026, 2, 13, 12, tzinfo=timezone.utc))
    for feature in SPEC.feature_names:
        assert (vec[f"{feature}__status"] == "present").all()
        pd.testing.assert_series_equal(
            vec[feature].astype(object).reset_index(drop=True),
            want[feature].head(50).astype(object).where(want[feature].head(50).notna(), None).reset_index(drop=True),
            check_names=False, check_exact=False, rtol=1e-6,
        )


def test_rematerializing_replaces_exactly_that_partition(settings):
    with dg.instance_for_test() as instance:
        for day in ("2026-02-10", "2026-02-11", "2026-02-12"):
            assert run(settings, day, instance=instance).success
        before = offline(settings)
        # The raw log changes (late data for user 1 on 02-11); re-run 02-11 only.
        raw = pd.read_parquet(settings.sessions_path)
        late = raw.iloc[[0]].assign(user_id=1, session_id="late-1", tokens=10_000_000,
                                    event_timestamp=pd.Timestamp("2026-02-11T08:00:00Z"))
        write_sessions(settings.sessions_path, pd.concat([raw, late], ignore_index=True))
        assert run(settings, "2026-02-11", instance=instance).success
        assert run(settings, "2026-02-11", instance=instance).success  # twice: still no duplicates

    after = offline(settings)
    assert not after.duplicated(["user_id", "event_timestamp"]).any()
    ts_11 = pd.Timestamp("2026-02-12T00:00:00Z")
    want_11 = expected(settings, date(2026, 2, 11))
    cols = ["user_id", *SPEC.feature_names, "event_timestamp"]
    got_11 = after.loc[after["event_timestamp"] == ts_11, cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(got_11, want_11[cols], check_dtype=False)
    untouched_before = before[before["event_timestamp"] != ts_11].reset_index(drop=True)
    untouched_after = after[after["event_timestamp"] != ts_11].reset_index(drop=True)
    pd.testing.assert_frame_equal(untouched_before, untouched_after)
    user1 = after[(after["event_timestamp"] == ts_11) & (after["user_id"] == 1)]
    assert user1["total_tokens_7d"].item() >= 10_000_000


def test_backfilling_older_partitions_never_overwrites_newer_online_values(settings):
    with dg.instance_for_test() as instance:
        assert run(settings, "2026-02-15", instance=instance).success
        newest = expected(settings, date(2026, 2, 15))
        result = run(settings, "2026-02-09", instance=instance)  # a backfill of an older day
        assert result.success
        md = result.get_asset_materialization_events()[0].materialization.metadata
        older = expected(settings, date(2026, 2, 9))
        overlap = set(older["user_id"]) & set(newest["user_id"])
        assert md["rows_skipped_online_newer"].value == len(overlap) > 0

    users = sorted(set(older["user_id"]) | set(newest["user_id"]))
    vec = online(settings, users, now=datetime(2026, 2, 16, 1, tzinfo=timezone.utc)).set_index("user_id")
    stamps = vec["sessions_7d__event_timestamp"]
    newest_users = set(newest["user_id"])
    for user in users:
        want_ts = pd.Timestamp("2026-02-16T00:00:00Z") if user in newest_users else pd.Timestamp("2026-02-10T00:00:00Z")
        assert stamps[user] == want_ts, user
    top = newest.set_index("user_id")["sessions_7d"]
    assert (vec.loc[list(top.index), "sessions_7d"].astype(int) == top).all()


def test_online_values_older_than_ttl_are_expired(settings):
    assert run(settings, "2026-02-12").success
    user = int(expected(settings, date(2026, 2, 12))["user_id"].iloc[0])
    fresh = online(settings, [user], now=datetime(2026, 2, 20, 0, tzinfo=timezone.utc))  # exactly TTL: still valid
    assert fresh["sessions_7d__status"].item() == "present"
    stale = online(settings, [user], now=datetime(2026, 2, 20, 0, 0, 1, tzinfo=timezone.utc))
    assert stale["sessions_7d__status"].item() == "expired"
    assert pd.isna(stale["sessions_7d"].item())
    assert stale["sessions_7d__event_timestamp"].item() == pd.Timestamp("2026-02-13T00:00:00Z")


def test_validation_failure_writes_nothing_and_quarantines(settings):
    # A stricter spec under the same name: more than 3 sessions a week is declared impossible.
    strict = replace(SPEC, fields=tuple(replace(f, le=3) if f.name == "sessions_7d" else f for f in SPEC.fields))
    assets = [build_raw_sessions_asset(settings), build_feature_view_asset(strict, settings)]
    with dg.instance_for_test() as instance:
        result = run(settings, "2026-02-12", assets=assets, instance=instance)
        assert not result.success
        assert result.get_asset_materialization_events() == []
        (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == PANDERA_CHECK]
        assert check.check_name == PANDERA_CHECK and not check.passed and check.partition == "2026-02-12"
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.step_failure_data.user_failure_data.description
    assert "feature view 'user_activity', partition 2026-02-12" in message
    assert "column 'sessions_7d'" in message and "less_than_or_equal_to(3)" in message
    assert "sample rows" in message and "quarantined in" in message

    assert offline(settings).empty
    want = expected(settings, date(2026, 2, 12))
    vec = online(settings, want["user_id"].head(20), now=datetime(2026, 2, 13, tzinfo=timezone.utc))
    assert (vec["sessions_7d__status"] == "missing").all()

    (qdir,) = list((settings.quarantine_dir / "user_activity" / "2026-02-12").iterdir())
    bad = pd.read_parquet(qdir / "rows.parquet")
    assert len(bad) == int((want["sessions_7d"] > 3).sum()) > 0
    assert (bad["sessions_7d"] > 3).all()
    assert "less_than_or_equal_to(3)" in (qdir / "failures.csv").read_text()


def test_an_integer_sum_beyond_int64_fails_the_partition_and_writes_nothing(settings):
    """Four sessions of 2**62 tokens on one day: the int64 sum wrapped around to exactly the old total (sessions
    and messages grew, so the partition looked fine). Now the partition fails, naming view, partition, feature
    and entity, and nothing of it is written offline or online."""
    platform = FeaturePlatform(settings)
    platform.materialize("user_activity", "2026-02-11")
    raw = pd.read_parquet(settings.sessions_path)
    user = int(raw.loc[raw["event_timestamp"].dt.date == date(2026, 2, 11), "user_id"].min())
    now = datetime(2026, 2, 13, 12, tzinfo=timezone.utc)
    before = online(settings, [user], now=now)
    assert before["total_tokens_7d__status"].item() == "present"
    spikes = pd.concat([raw[raw["user_id"] == user].head(1).assign(
        session_id=f"spike-{i}", tokens=2**62, event_timestamp=pd.Timestamp("2026-02-12T12:00:00Z")) for i in range(4)])
    write_sessions(settings.sessions_path, pd.concat([raw, spikes], ignore_index=True))

    with pytest.raises(AggregationOverflowError) as err:  # the error itself, not a MaterializationError quoting it
        platform.materialize("user_activity", "2026-02-12")
    message = str(err.value)
    assert message.count("AggregationOverflowError") == 0 and message.count("outside int64") == 1
    assert (f"feature view 'user_activity', partition 2026-02-12: feature 'total_tokens_7d' (sum of 'tokens') of "
            f"user_id={user} is ") in message and ", outside int64" in message
    assert len(message) < 2_000, message

    table = offline(settings)
    assert set(table["event_timestamp"]) == {pd.Timestamp("2026-02-12T00:00:00Z")}  # 2026-02-11's rows only
    pd.testing.assert_frame_equal(online(settings, [user], now=now), before)


def test_invalid_spec_field_is_rejected_by_name():
    with pytest.raises(ValueError, match="feature view 'user_activity'.*sessions_7d.*declared twice"):
        replace(SPEC, fields=SPEC.fields + (Field("sessions_7d", "int64"),))


@pytest.mark.parametrize("bad", ['sessions"; DROP TABLE x; --', "Sessions", "a b", "user:activity", "x" * 64, ""])
def test_names_that_would_reach_sql_or_redis_keys_are_rejected(bad):
    """A spec cannot put quoting, separators, whitespace or overlong names into identifiers and keys."""
    field = next(f for f in SPEC.fields if f.name == "tools_used_7d")
    cases = [
        lambda: replace(SPEC, fields=tuple(replace(f, name=bad) if f is field else f for f in SPEC.fields),
                        aggregation=replace(SPEC.aggregation, aggs=tuple(
                            replace(a, feature=bad) if a.feature == field.name else a for a in SPEC.aggregation.aggs))),
        lambda: replace(SPEC, entity=replace(SPEC.entity, join_key=bad)),
        lambda: replace(SPEC, aggregation=replace(SPEC.aggregation, source=bad)),
        lambda: replace(SPEC, aggregation=replace(SPEC.aggregation, aggs=tuple(
            replace(a, column=bad) if a.feature == field.name else a for a in SPEC.aggregation.aggs))),
    ]
    for make in cases:
        with pytest.raises(ValueError, match="feature view 'user_activity'.*snake_case identifier"):
            make()
