"""The example repository's own Dagster definitions, merged with the platform's: the daily schedule that
appends yesterday's generated sessions to the demo log (the stand-in for a team's delivery pipeline)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import dagster as dg
import pandas as pd
from chat_activity.definitions import defs, demo_sessions_daily, demo_sessions_job

from feature_platform.demo.generator import generate_day


def test_the_schedule_asks_for_yesterday_once_just_after_midnight_utc():
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 10, 0, 5, tzinfo=timezone.utc))
    request = demo_sessions_daily(context)
    assert request.run_key == "2026-03-09"
    assert request.run_config == {"ops": {"append_demo_sessions": {"config": {"day": "2026-03-09"}}}}
    assert demo_sessions_daily.cron_schedule == "5 0 * * *" and demo_sessions_daily.execution_timezone == "UTC"
    assert demo_sessions_daily.default_status == dg.DefaultScheduleStatus.RUNNING


def test_the_merged_definitions_hold_the_platforms_assets_and_the_examples_schedule():
    assert defs.resolve_schedule_def("demo_sessions_daily").job.name == "demo_sessions_job"
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {"raw_sessions", "user_activity", "churn_training_set"} <= keys


def test_the_job_appends_the_day_to_the_generated_log_and_never_to_yours(tmp_path, monkeypatch):
    for name in ("FEATURE_PLATFORM_SESSIONS_PATH", "FEATURE_PLATFORM_REPO"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FEATURE_PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FEATURE_PLATFORM_DEMO_USERS", "50")
    config = {"ops": {"append_demo_sessions": {"config": {"day": "2026-03-09"}}}}
    assert demo_sessions_job.execute_in_process(run_config=config).success
    written = pd.read_parquet(tmp_path / "home" / "raw" / "sessions" / "2026-03-09.parquet")
    expected = generate_day(date(2026, 3, 9), 50)
    pd.testing.assert_frame_equal(written[list(expected.columns)], expected, check_dtype=False)

    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.setenv("FEATURE_PLATFORM_SESSIONS_PATH", str(mine))
    assert demo_sessions_job.execute_in_process(run_config=config).success
    assert list(mine.iterdir()) == []
