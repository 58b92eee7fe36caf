"""`feature-platform`: help on every command, and the commands end to end in a subprocess."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from feature_platform.cli import main
from feature_platform.demo.generator import generate_day
from feature_platform_tests.conftest import write_sessions


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.as_env(), "FEATURE_PLATFORM_SESSIONS_PATH": str(settings.sessions_path)}
    return subprocess.run([sys.executable, "-m", "feature_platform.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("command", [[], ["demo"], ["materialize"], ["online"], ["plan"], ["apply"], ["remove"],
                                     ["history"], ["serve"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: feature-platform" in out
    if command == ["materialize"]:
        assert "--view" in out and "--start" in out and "--end" in out


@pytest.mark.parametrize("profile", ["embedded", pytest.param("services", marks=pytest.mark.services)])
def test_materialize_then_online(profile, request):
    settings = request.getfixturevalue(f"{profile}_settings")
    write_sessions(settings.sessions_path, pd.concat([generate_day(date(2026, 3, d), 100) for d in range(1, 11)]))
    done = cli(settings, "materialize", "--view", "user_activity", "--start", "2026-03-09", "--end", "2026-03-10")
    assert done.returncode == 0, done.stderr
    assert "materialized user_activity: 2 partition(s) 2026-03-09 .. 2026-03-10" in done.stdout
    assert "2/2" in done.stderr  # the progress display
    out = cli(settings, "online", "--view", "user_activity", "--entity", "5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["sessions_7d", "avg_session_duration_sec", "messages_sent_7d",
                                                    "tools_used_7d", "preferred_model", "total_tokens_7d"]
    # 2026-03 values are older than the 7-day TTL today: reported as expired, never served as current
    assert all("expired" in line for line in lines)


def test_errors_are_one_line_and_nonzero(embedded_settings):
    bad = cli(embedded_settings, "materialize", "--view", "nope", "--start", "2026-03-09")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("error: unknown feature view 'nope'")


def test_demo_runs_on_the_embedded_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURE_PLATFORM_", "DAGSTER_HOME"))}
    env["FEATURE_PLATFORM_DEMO_USERS"] = "200"
    done = subprocess.run([sys.executable, "-m", "feature_platform.cli", "demo", "--days", "3"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "online vector of user_id=" in done.stdout
    assert "present" in done.stdout and "summary: 3 partitions" in done.stdout
    assert (tmp_path / ".feature_platform" / "offline" / "user_activity").is_dir()
    # versions 2 and 3 of user_activity, side by side
    assert "user_activity (v2)" in done.stdout and "user_activity_v3 (v3)" in done.stdout
    assert "distinct_models_7d        (not in this version)" in done.stdout
    assert (tmp_path / ".feature_platform" / "offline" / "user_activity_v3").is_dir()
    assert len(list((tmp_path / ".feature_platform" / "raw" / "sessions").glob("*.parquet"))) == 3 + 7


@pytest.mark.parametrize("profile", ["embedded", pytest.param("services", marks=pytest.mark.services)])
def test_the_demo_names_the_dagster_home_of_its_runs(profile, request, tmp_path):
    """With a home of its own (FEATURE_PLATFORM_HOME), the demo's `next` hint names the DAGSTER_HOME that holds
    its runs and partitions; `dagster dev` without it would use the repository's dagster.yaml (the default home)."""
    import re

    import dagster as dg

    settings = request.getfixturevalue(f"{profile}_settings").with_(home=tmp_path / "custom home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURE_PLATFORM_", "DAGSTER_HOME"))}
    env |= {k: v for k, v in settings.as_env().items() if k not in ("FEATURE_PLATFORM_SESSIONS_PATH",
                                                                     "FEATURE_PLATFORM_PARTITIONS_START")}
    env["FEATURE_PLATFORM_DEMO_USERS"] = "200"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "feature_platform.cli", "demo", "--days", "3"], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    hint = re.search(r"next: `DAGSTER_HOME=(.+?) dagster dev -m feature_platform.definitions`", done.stdout)
    assert hint, done.stdout[-1000:]
    dagster_home = Path(shlex.split(hint.group(1))[0])
    assert dagster_home == (tmp_path / "custom home" / "dagster").resolve()
    # What `dagster dev` run with it (from any directory) shows: the demo's runs and its three partitions.
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        days = instance.get_materialized_partitions(dg.AssetKey("user_activity"))
        assert len(days) == 3 and len(instance.get_runs()) > 3
    finally:
        instance.dispose()
    assert not list(elsewhere.iterdir())  # and nothing was written where the demo ran


def test_stream_load_generator_lands_batches_and_direct_writes_online(embedded_settings):
    queued = cli(embedded_settings, "stream", "--rate", "50", "--seconds", "1.5", "--batch-interval", "0.5")
    assert queued.returncode == 0, queued.stderr
    assert "landed for the sensor" in queued.stdout
    from feature_platform.stores.landing import LandingDirectory

    landed = LandingDirectory(embedded_settings.home, "user_realtime_events").pending()
    assert len(landed) == 3
    direct = cli(embedded_settings, "stream", "--rate", "40", "--seconds", "0.5", "--direct", "--users", "5")
    assert direct.returncode == 0, direct.stderr
    assert "written online, logged for the offline store (the sensor drains the log); 0 rejected" in direct.stdout
    import feature_platform as fp

    vec = fp.FeaturePlatform(embedded_settings).online_features(
        ["user_realtime:current_session_messages"], [{"user_id": u} for u in range(1, 6)])
    assert vec["current_session_messages"].notna().sum() >= 4
