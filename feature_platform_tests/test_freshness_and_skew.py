"""Data-time freshness (with a controllable clock), the freshness report and CLI exit code, the
freshness checks, and the skew guard catching an online value changed by hand."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pandas as pd
import pytest
from chat_activity.user_activity import SPEC as ACTIVITY
from chat_activity.user_realtime import SPEC as REALTIME

import feature_platform as fp
from feature_platform.definitions import build_definitions
from feature_platform.defs.freshness_checks import DATA_FRESHNESS_CHECK
from feature_platform.defs.resources import resources_for
from feature_platform.demo.generator import generate_day
from feature_platform.demo.stream import SessionSimulator
from feature_platform.freshness import FRESH, MISSING, STALE, WARN, view_freshness
from feature_platform.skew import skew_report
from feature_platform_tests.helpers import write_sessions

D = date(2026, 6, 10)
TS = pd.Timestamp("2026-06-11T00:00:00Z")  # feature timestamp of partition D


@pytest.fixture
def platform(profile_settings):
    settings = profile_settings
    write_sessions(settings.sessions_path, pd.concat([generate_day(date(2026, 6, d), 80) for d in range(1, 11)]))
    return fp.FeaturePlatform(settings)


def test_daily_view_fresh_warn_stale_transitions(platform):
    assert view_freshness(platform.runtime, ACTIVITY, now=TS).status == MISSING
    platform.materialize("user_activity", D)
    at = {h: view_freshness(platform.runtime, ACTIVITY, now=TS + pd.Timedelta(hours=h)) for h in (10, 24.5, 26.5)}
    assert at[10].status == FRESH and at[10].age == timedelta(hours=10)
    assert at[24.5].status == WARN  # warn after 24 h (26 h SLA minus 2 h)
    assert at[26.5].status == STALE
    assert at[10].newest_offline == TS and at[10].newest_online == TS and at[10].latest_partition == "2026-06-10"


def test_successful_run_that_wrote_old_data_is_stale(platform):
    platform.materialize("user_activity", D)  # succeeds today, but its data is from June
    assert view_freshness(platform.runtime, ACTIVITY).status == STALE


def test_realtime_view_goes_stale_five_minutes_after_the_producer_stops(platform):
    now = datetime.now(timezone.utc)
    platform.push("user_realtime_events", SessionSimulator().events(20, now=now), direct=True)
    platform.ingest_pending("user_realtime_events")  # the sensor drains the direct log
    assert view_freshness(platform.runtime, REALTIME, now=now + timedelta(minutes=1)).status == FRESH
    assert view_freshness(platform.runtime, REALTIME, now=now + timedelta(minutes=4, seconds=45)).status == WARN
    assert view_freshness(platform.runtime, REALTIME, now=now + timedelta(minutes=5, seconds=2)).status == STALE


def test_freshness_report_and_cli_exit_code(platform):
    report = platform.freshness()
    assert list(report["view"]) == ["user_activity", "user_activity_v3", "user_realtime"]
    assert set(report["status"]) == {MISSING}
    env = {**os.environ, **platform.settings.as_env()}
    cli = [sys.executable, "-m", "feature_platform.cli", "freshness"]
    failing = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert failing.returncode == 1 and "user_realtime" in failing.stdout and "missing" in failing.stdout

    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    raw = pd.concat([generate_day(yesterday - timedelta(days=i), 50) for i in range(8)])
    write_sessions(platform.settings.sessions_path, raw)
    platform.materialize("user_activity", yesterday)
    platform.materialize("user_activity_v3", yesterday)  # every version served is a view that must be fresh
    platform.push("user_realtime_events", SessionSimulator().events(10), direct=True)
    platform.ingest_pending("user_realtime_events")  # the sensor drains the direct log
    assert set(platform.freshness()["status"]) == {FRESH}
    passing = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert passing.returncode == 0, passing.stdout + passing.stderr


def test_data_freshness_checks_run_from_their_job(embedded_settings):
    defs = build_definitions(embedded_settings)
    job = defs.resolve_job_def("freshness_checks_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, resources=resources_for(embedded_settings),
                                        raise_on_error=False)
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {("user_activity", DATA_FRESHNESS_CHECK), ("user_activity_v3", DATA_FRESHNESS_CHECK),
                                ("user_realtime", DATA_FRESHNESS_CHECK), ("churn_training_set", "upstream_freshness")}
    assert not any(e.passed for e in evaluations.values())  # nothing materialized: missing
    upstream = evaluations[("churn_training_set", "upstream_freshness")]
    assert upstream.metadata["user_activity"].value == MISSING  # the training set shows its view's problem
    assert evaluations[("user_realtime", DATA_FRESHNESS_CHECK)].metadata["status"].value == MISSING
    schedule = defs.get_schedule_def("freshness_checks_every_minute")
    assert schedule.cron_schedule == "* * * * *"


def test_skew_guard_passes_after_materialization_and_catches_a_changed_online_value(platform):
    platform.materialize("user_activity", D)
    clean = skew_report(platform.runtime, ACTIVITY, D)
    assert clean.compared > 0 and clean.mismatches == 0

    table = platform.offline_table("user_activity", D, D)
    victim = int(table["user_id"].iloc[0])
    tamper(platform, victim, "total_tokens_7d", 123456789)
    report = skew_report(platform.runtime, ACTIVITY, D, sample=len(table))
    assert report.mismatches == 1 and report.examples[0]["user_id"] == victim
    assert report.examples[0]["online"]["total_tokens_7d"] == 123456789


def test_skew_check_runs_with_each_materialization(embedded_settings):
    write_sessions(embedded_settings.sessions_path, pd.concat([generate_day(date(2026, 6, d), 60) for d in range(1, 11)]))
    platform = fp.FeaturePlatform(embedded_settings)
    platform.materialize("user_activity", D)
    records = platform.instance().event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("user_activity"), "online_offline_skew"), limit=5)
    assert len(records) == 1 and records[0].event.dagster_event.event_specific_data.passed
    assert records[0].event.dagster_event.event_specific_data.partition == D.isoformat()


def test_checks_run_alone_evaluate_the_stored_partition(platform):
    """Executing the view's checks without materializing (as "Execute" on a check in the UI does)."""
    platform.materialize("user_activity", D)
    for user in platform.offline_table("user_activity", D, D)["user_id"]:
        tamper(platform, int(user), "total_tokens_7d", 123456789)
    names = ("pandera_schema", "online_offline_skew", "feature_drift")
    keys = [dg.AssetCheckKey(dg.AssetKey("user_activity"), n) for n in names]
    view = [a for a in build_definitions(platform.settings).assets
            if isinstance(a, dg.AssetsDefinition) and dg.AssetKey("user_activity") in a.keys]
    job = dg.define_asset_job("checks_only", selection=dg.AssetSelection.checks(*keys), partitions_def=view[0].partitions_def)
    defs = dg.Definitions(assets=view, jobs=[job], resources=resources_for(platform.settings))
    result = defs.resolve_job_def("checks_only").execute_in_process(tags={"dagster/partition": D.isoformat()}, instance=platform.instance(),
                                                                    raise_on_error=False)
    assert result.get_asset_materialization_events() == []
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(names) and {e.partition for e in evaluations.values()} == {D.isoformat()}
    assert evaluations["pandera_schema"].passed
    assert not evaluations["online_offline_skew"].passed
    assert evaluations["online_offline_skew"].metadata["mismatch_rate"].value == 1.0


def tamper(platform, user: int, feature: str, value: int) -> None:
    """Overwrite one stored online value by hand, bypassing the platform (Redis or SQLite)."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from feature_platform_tests.feast_format.stock_feast import overwrite_online_value

    entity_key = EntityKey(join_keys=[ACTIVITY.entity.join_key], entity_values=[Value(int64_val=user)])
    # Same feature timestamp, different value: exactly the silent corruption the guard must catch.
    overwrite_online_value(platform.runtime.online.store, "user_activity", entity_key, feature, Value(int64_val=value))


def test_partition_statistics_and_drift_check(embedded_settings):
    # 06-04..06-17, and the week 06-04..06-10 repeated a week earlier: 06-10 and its baseline 06-03 see the same
    # week (a quiet week, measured against a real baseline).
    raw = pd.concat([generate_day(date(2026, 6, 4) + timedelta(days=d), 60) for d in range(14)])
    repeated = raw[raw["event_timestamp"] < pd.Timestamp("2026-06-11T00:00:00Z")].copy()
    repeated["event_timestamp"] -= pd.Timedelta(days=7)
    repeated["session_id"] = "repeated-" + repeated["session_id"]
    raw = pd.concat([repeated, raw], ignore_index=True)
    week_later = raw["event_timestamp"] >= pd.Timestamp("2026-06-11T00:00:00Z")
    raw.loc[week_later, "tokens"] *= 50  # a big shift in token usage from 06-11 on
    write_sessions(embedded_settings.sessions_path, raw)
    platform = fp.FeaturePlatform(embedded_settings)
    platform.materialize("user_activity", date(2026, 6, 3))  # the baseline of 06-10, a full window before it
    platform.materialize("user_activity", date(2026, 6, 9), date(2026, 6, 17))
    storage = platform.instance().event_log_storage

    def drift(day: str):
        records = storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("user_activity"), "feature_drift"), limit=20)
        (record,) = [r for r in records if r.event.dagster_event.event_specific_data.partition == day]
        return record.event.dagster_event.event_specific_data

    assert drift("2026-06-10").passed  # a quiet week
    assert drift("2026-06-10").metadata["baseline_rows"].value > 0  # compared with a real baseline
    shifted = drift("2026-06-17")
    assert not shifted.passed and shifted.severity == dg.AssetCheckSeverity.WARN
    assert "total_tokens_7d" in shifted.metadata["shifted"].value
    assert shifted.metadata["psi.total_tokens_7d"].value > 0.2

    platform.materialize("user_activity", date(2026, 6, 17))  # per-partition statistics: a single-partition run's
    event = platform.instance().get_latest_materialization_event(dg.AssetKey("user_activity"))
    md = event.asset_materialization.metadata
    table = platform.offline_table("user_activity", date(2026, 6, 17), date(2026, 6, 17))
    assert md["avg_session_duration_sec.null_rate"].value == pytest.approx(table["avg_session_duration_sec"].isna().mean())
    assert md["preferred_model.distinct"].value == table["preferred_model"].nunique()


def test_partition_aware_freshness_check_ignores_old_backfills(embedded_settings):
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    if datetime.now(timezone.utc).hour < 2:
        yesterday -= timedelta(days=1)  # before 02:00 the deadline still expects the day before
    write_sessions(embedded_settings.sessions_path,
                   pd.concat([generate_day(yesterday - timedelta(days=i), 30) for i in range(12)]))
    platform = fp.FeaturePlatform(embedded_settings)
    defs = build_definitions(embedded_settings)
    graph = defs.resolve_asset_graph()
    (key,) = [k for k in graph.asset_check_keys
              if k.name == "freshness_check" and k.asset_key == dg.AssetKey("user_activity")]
    checks = [c for c in defs.asset_checks if key in c.check_keys]

    def evaluate():
        result = dg.materialize([*defs.assets, *checks], selection=dg.AssetSelection.checks(key),
                                instance=platform.instance(), resources=resources_for(embedded_settings))
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation.passed

    platform.materialize("user_activity", yesterday - timedelta(days=5))  # an old backfill, run just now
    assert evaluate() is False
    platform.materialize("user_activity", yesterday)
    assert evaluate() is True
    assert defs.get_sensor_def("partition_freshness_sensor") is not None


def test_skew_guard_counts_a_missing_online_value_as_a_mismatch(embedded_settings):
    write_sessions(embedded_settings.sessions_path, pd.concat([generate_day(date(2026, 6, d), 40) for d in range(1, 11)]))
    platform = fp.FeaturePlatform(embedded_settings)
    platform.materialize("user_activity", D)
    import sqlite3

    with sqlite3.connect(embedded_settings.feast_dir / "online.db") as conn:  # the online rows vanish
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name LIKE '%user_activity%'")]
        assert tables
        for table in tables:
            conn.execute(f'DELETE FROM "{table}"')
    report = skew_report(platform.runtime, ACTIVITY, D)
    assert report.compared == report.sampled > 0 and report.mismatches == report.compared


def check_history(platform, name: str) -> dict[str, dg.AssetCheckEvaluation]:
    records = platform.instance().event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("user_activity"), name), limit=20)
    return {r.event.dagster_event.event_specific_data.partition: r.event.dagster_event.event_specific_data
            for r in records}


def assert_skipped(evaluation: dg.AssetCheckEvaluation, reason: str) -> None:
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["skipped"].value is True
    assert reason in evaluation.metadata["skipped_reason"].value and reason in evaluation.description


def test_checks_with_nothing_to_compare_are_skipped_warnings_never_passes(embedded_settings):
    """Drift without a baseline partition and skew over a partition of 0 rows compared nothing: each says so as a
    warning with its reason, and opens no alert incident."""
    from feature_platform.defs.alerts import current_incidents

    write_sessions(embedded_settings.sessions_path, pd.concat([generate_day(date(2026, 6, d), 40) for d in range(4, 11)]))
    platform = fp.FeaturePlatform(embedded_settings)
    platform.materialize("user_activity", D)  # rows, but its baseline 06-03 was never materialized
    empty = date(2026, 5, 20)
    platform.materialize("user_activity", empty)  # no session in its window: 0 rows
    assert platform.offline_table("user_activity", empty, empty).empty

    drift, skew = check_history(platform, "feature_drift"), check_history(platform, "online_offline_skew")
    assert_skipped(drift[D.isoformat()], "no baseline: partition 2026-06-03 has no rows")
    assert drift[D.isoformat()].metadata["rows"].value > 0
    assert skew[D.isoformat()].passed and skew[D.isoformat()].metadata["compared"].value > 0  # this one compared
    assert_skipped(skew[empty.isoformat()], "the partition has no rows")
    assert skew[empty.isoformat()].metadata["compared"].value == 0
    assert_skipped(drift[empty.isoformat()], "no baseline")
    incidents = current_incidents(platform.runtime, platform.instance(), datetime(2026, 6, 11, 1, tzinfo=timezone.utc))
    assert not [key for key in incidents if key.startswith("check:")]


def test_skew_over_no_rows_and_drift_over_features_without_values_are_skipped():
    from feature_platform.defs.freshness_checks import drift_evaluation, skew_result
    from feature_platform.skew import SkewReport

    result = skew_result(ACTIVITY, SkewReport(sampled=0, compared=0, superseded=0, mismatches=0, examples=[]))
    assert result["passed"] is False and result["severity"] == dg.AssetCheckSeverity.WARN
    assert result["metadata"]["skipped_reason"] == "the partition has no rows"
    compared = skew_result(ACTIVITY, SkewReport(sampled=4, compared=3, superseded=1, mismatches=0, examples=[]))
    assert compared["passed"] is True and "skipped" not in compared["metadata"]
    # Every sampled entity read back with a newer day's value (a range run's earlier days): the newer days' checks
    # compare those values; this one compared nothing, so it is a skipped warning saying why (never a pass).
    superseded = skew_result(ACTIVITY, SkewReport(sampled=4, compared=0, superseded=4, mismatches=0, examples=[]))
    assert superseded["passed"] is False and superseded["severity"] == dg.AssetCheckSeverity.WARN
    assert superseded["metadata"]["superseded_by_newer"] == 4
    assert superseded["metadata"]["skipped_reason"].startswith("all 4 sampled entities have a newer value online")

    rows = pd.DataFrame({f: [1.0, 2.0, 3.0] for f in ACTIVITY.feature_names})
    rows["preferred_model"] = ["a", "b", "a"]
    no_values = rows.copy()
    no_values[:] = None
    result = drift_evaluation(ACTIVITY, D, no_values, rows)
    assert result["passed"] is False and result["metadata"]["skipped_reason"] == "no feature has a value in both partitions"
    partly = rows.copy()
    partly["avg_session_duration_sec"] = None  # one feature without values: the others are still compared
    result = drift_evaluation(ACTIVITY, D, partly, rows)
    assert result["passed"] is True and "skipped" not in result["metadata"]
    assert result["metadata"]["not_compared"] == "avg_session_duration_sec"
