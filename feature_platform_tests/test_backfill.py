"""Backfills as Dagster range runs (`BackfillPolicy.multi_run`), on both profiles: the same tables and online
values as one run per partition, one materialization and check result per partition, and on a bad day the
days before it written and nothing after."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pandas as pd
import pytest
import redis
from chat_activity.user_activity import SPEC

from feature_platform.compute.window_aggregate import aggregate_day
from feature_platform.defs.feature_views import PANDERA_CHECK, build_feature_view_asset
from feature_platform.defs.freshness_checks import DRIFT_CHECK, SKEW_CHECK
from feature_platform.defs.resources import resources_for
from feature_platform.demo.generator import generate_day
from feature_platform.platform import FeaturePlatform
from feature_platform.vocabulary import day_end
from feature_platform_tests.example_repo import build_raw_sessions_asset
from feature_platform_tests.helpers import make_embedded_settings, services_settings_in, write_sessions

FIRST, LAST = date(2026, 2, 1), date(2026, 2, 24)
FEATURES = [f"user_activity:{f}" for f in SPEC.feature_names]
RAW = pd.concat([generate_day(FIRST + timedelta(days=i), 250, seed=9) for i in range(-8, 24)], ignore_index=True)


def range_tags(first: date, last: date) -> dict:
    return {"dagster/asset_partition_range_start": first.isoformat(), "dagster/asset_partition_range_end": last.isoformat()}


@pytest.fixture
def pair(profile, tmp_path):
    """Two deployments of one profile over the same raw log: one backfilled by ranges, one day by day."""
    if profile == "embedded":
        yield [make_embedded_settings(tmp_path / n) for n in ("ranged", "daily")]
        return
    with services_settings_in(tmp_path / "ranged") as ranged:
        # A second database and Redis db for the day-by-day deployment, flushed like the first: values left in it
        # by an earlier run (or another suite using that db) would win newest-wins and fail the comparison.
        with services_settings_in(tmp_path / "daily") as daily:
            daily = daily.with_(redis_db=daily.redis_db + 1)
            client = redis.Redis(host=daily.redis_host, port=daily.redis_port, db=daily.redis_db)
            client.flushdb()
            try:
                yield [ranged, daily]
            finally:
                client.flushdb()
                client.close()


def test_views_declare_a_multi_run_backfill_policy(embedded_settings):
    asset = build_feature_view_asset(SPEC, embedded_settings.with_(backfill_days_per_run=30))
    assert asset.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=30)


def test_range_runs_equal_one_run_per_partition(pair):
    ranged, daily = pair
    for s in pair:
        write_sessions(s.sessions_path, RAW)
    days = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    with dg.instance_for_test() as instance:
        asset = build_feature_view_asset(SPEC, ranged)
        result = dg.materialize([build_raw_sessions_asset(ranged), asset], selection=[dg.AssetKey("user_activity")],
                                instance=instance, resources=resources_for(ranged), tags=range_tags(FIRST, LAST))
        assert result.success
        mats = result.get_asset_materialization_events()
        assert [m.partition for m in mats] == [d.isoformat() for d in days]
        wants = {d.isoformat(): aggregate_day(SPEC, RAW, d) for d in days}
        # Each partition's own figures, as a one-partition run reports them, beside the run's totals.
        for m in mats:
            md, want = m.materialization.metadata, wants[m.partition]
            assert md["dagster/row_count"].value == len(want)
            assert md["closing_rows"].value == int((want["sessions_7d"] == 0).sum())
            assert md["messages_sent_7d.max"].value == float(want["messages_sent_7d"].max())
            assert md["partitions_in_run"].value == len(days)
            assert (md["first_partition"].value, md["last_partition"].value) == (days[0].isoformat(), days[-1].isoformat())
        md = mats[0].materialization.metadata
        assert md["rows_in_run"].value == sum(len(w) for w in wants.values())
        assert md["closing_rows_in_run"].value == sum(int((w["sessions_7d"] == 0).sum()) for w in wants.values())
        checks = result.get_asset_check_evaluations()
        by_name = {name: [c.partition for c in checks if c.check_name == name] for name in (PANDERA_CHECK, DRIFT_CHECK, SKEW_CHECK)}
        assert by_name[PANDERA_CHECK] == by_name[DRIFT_CHECK] == [d.isoformat() for d in days]
        assert by_name[SKEW_CHECK] == [d.isoformat() for d in days]
        assert all(c.passed for c in checks if c.check_name == PANDERA_CHECK)
        # Skew: each day passes, or (an earlier day whose sampled entities all have a newer day's value online)
        # is a skipped warning saying so; the last day always compares.
        skew = [c for c in checks if c.check_name == SKEW_CHECK]
        assert all(c.passed or (c.severity == dg.AssetCheckSeverity.WARN and c.metadata["compared"].value == 0
                                and "newer value online" in c.metadata["skipped_reason"].value) for c in skew)
        assert skew[-1].passed and skew[-1].metadata["compared"].value > 0
        assert instance.get_materialized_partitions(dg.AssetKey("user_activity")) == {d.isoformat() for d in days}
        # Online, a range run writes each entity's newest row once.
        newest = pd.concat(wants.values()).drop_duplicates("user_id", keep="last")
        assert md["rows_written_online_in_run"].value == len(newest)
        # Each day: the entities whose newest row of the run is that day's.
        sent = newest["event_timestamp"].value_counts()
        assert [m.materialization.metadata["rows_written_online"].value for m in mats] == \
            [int(sent.get(pd.Timestamp(day_end(d)), 0)) for d in days]

    daily_platform = FeaturePlatform(daily.with_(backfill_days_per_run=1))  # one run per partition
    daily_platform.materialize("user_activity", FIRST, LAST)
    ranged_platform = FeaturePlatform(ranged)
    a, b = ranged_platform.offline_table("user_activity"), daily_platform.offline_table("user_activity")
    cols = ["user_id", *SPEC.feature_names, "event_timestamp"]
    pd.testing.assert_frame_equal(a[cols], b[cols])

    users = [{"user_id": int(u)} for u in sorted(RAW["user_id"].unique())]
    now = datetime(2026, 2, 25, 1, tzinfo=timezone.utc)
    got = ranged_platform.online_features(FEATURES, users, with_metadata=True, now=now)
    want = daily_platform.online_features(FEATURES, users, with_metadata=True, now=now)
    pd.testing.assert_frame_equal(got, want)
    assert (got["sessions_7d__status"] == "present").sum() > 100


def test_a_bad_day_keeps_the_days_before_it_and_writes_nothing_after(embedded_settings):
    bad_day = date(2026, 2, 10)
    # A stricter spec (a week's tokens above the log's real maximum are impossible) and one session on the
    # bad day far above it: the bad day's window is the first to fail.
    limit = int(max(aggregate_day(SPEC, RAW, FIRST + timedelta(days=i))["total_tokens_7d"].max() for i in range(24)))
    spike = RAW.iloc[[0]].assign(session_id="spike", tokens=limit * 10, event_timestamp=pd.Timestamp("2026-02-10T12:00Z"))
    write_sessions(embedded_settings.sessions_path, pd.concat([RAW, spike], ignore_index=True))
    strict = replace(SPEC, fields=tuple(replace(f, le=limit) if f.name == "total_tokens_7d" else f for f in SPEC.fields))
    with dg.instance_for_test() as instance:
        result = dg.materialize([build_raw_sessions_asset(embedded_settings), build_feature_view_asset(strict, embedded_settings)],
                                selection=[dg.AssetKey("user_activity")], instance=instance,
                                resources=resources_for(embedded_settings), tags=range_tags(FIRST, LAST), raise_on_error=False)
        assert not result.success
        written = [FIRST + timedelta(days=i) for i in range((bad_day - FIRST).days)]
        mats = result.get_asset_materialization_events()
        assert [m.partition for m in mats] == [d.isoformat() for d in written]
        assert [m.materialization.metadata["dagster/row_count"].value for m in mats] == \
            [len(aggregate_day(SPEC, RAW, d)) for d in written]
        failed = [c for c in result.get_asset_check_evaluations() if c.check_name == PANDERA_CHECK and not c.passed]
        assert [c.partition for c in failed] == [bad_day.isoformat()]
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert f"partition {bad_day}" in failure.step_failure_data.user_failure_data.description

    platform = FeaturePlatform(embedded_settings)
    table = platform.offline_table("user_activity")
    assert sorted(table["event_timestamp"].unique()) == [pd.Timestamp(d + timedelta(days=1), tz="UTC") for d in written]
    # Online holds exactly the newest rows of the written days (as if those days had run alone).
    newest = pd.concat([aggregate_day(SPEC, RAW, d) for d in written]).drop_duplicates("user_id", keep="last")
    got = platform.online_features(FEATURES, [{"user_id": int(u)} for u in newest["user_id"]], with_metadata=True,
                                   now=datetime(2026, 2, 10, 1, tzinfo=timezone.utc))
    assert (got["sessions_7d__event_timestamp"].to_numpy() == pd.to_datetime(newest["event_timestamp"]).to_numpy()).all()
    live = (got["total_tokens_7d__status"] == "present").to_numpy()
    assert live.sum() > 100 and (got.loc[~live, "total_tokens_7d__status"] == "expired").all()
    assert (got.loc[live, "total_tokens_7d"].astype("int64").to_numpy() == newest.loc[live, "total_tokens_7d"].to_numpy()).all()
