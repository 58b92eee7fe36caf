"""`feature-platform`: help on every command, and the commands end to end in a subprocess."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from feature_platform.cli import main
from feature_platform.demo.generator import generate_day
from feature_platform_tests.helpers import make_embedded_settings, write_sessions


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


def test_materialize_then_online(profile_settings):
    settings = profile_settings
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


def test_the_demo_names_the_dagster_home_of_its_runs(profile_settings, tmp_path):
    """With a home of its own (FEATURE_PLATFORM_HOME), the demo's `next` hint names the DAGSTER_HOME that holds
    its runs and partitions; `dagster dev` without it would use the repository's dagster.yaml (the default home)."""
    import re

    import dagster as dg

    settings = profile_settings.with_(home=tmp_path / "custom home")
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
    # One batch per --batch-interval while the machine keeps up (3 on a quiet one): each batch it reports landed.
    batches = int(re.search(r"pushed [0-9,]+ events in ([0-9,]+) batches", queued.stdout)[1].replace(",", ""))
    assert 1 <= batches <= 3 and len(landed) == batches, (queued.stdout, landed)
    direct = cli(embedded_settings, "stream", "--rate", "40", "--seconds", "0.5", "--direct", "--users", "5")
    assert direct.returncode == 0, direct.stderr
    assert "written online, logged for the offline store (the sensor drains the log); 0 rejected" in direct.stdout
    import feature_platform as fp

    vec = fp.FeaturePlatform(embedded_settings).online_features(
        ["user_realtime:current_session_messages"], [{"user_id": u} for u in range(1, 6)])
    assert vec["current_session_messages"].notna().sum() >= 4


# --- bad arguments (issue 19 item 12): one `error:` line naming the argument, never a traceback --------------

HUGE = ["x" * 100_000, "9" * 100_000, "-" + "9" * 5_000, "user_activity" * 8_000, "2026-01-0" + "1" * 100_000]
garbage = st.one_of(
    st.sampled_from(["", " ", "abc", "1.5", "-5", "0", "-0", "nan", "inf", "-inf", "1e309", "1e3", "9" * 30,
                     str(2**63), str(-(2**63) - 1), "０", "١٢", "1_000", " 7", "2025-13-01", "1600-01-01",
                     "9999-12-31", "2026-02-30", "01/02/2026", "user activity", "user_activity;", "'", ":", ",",
                     "sessions_7d,", "*", "--", "-x", "\x00", "\U0001F600", *HUGE]),
    st.text(max_size=20), st.integers(-(2**70), 2**70).map(str), st.floats().map(str))


def _int_in(value: str, low: int, high: int) -> bool:
    return re.fullmatch(r"-?[0-9]{1,30}", value) is not None and low <= int(value) <= high


def _seconds(value: str) -> bool:
    try:
        return 0 < float(value) < math.inf
    except ValueError:
        return False


def _iso_day(value: str) -> bool:
    try:
        date.fromisoformat(value)
        return True
    except ValueError:
        return False


VIEW_NAMES = ("user_activity", "user_activity_v3", "user_realtime")
# (argv with {} for the bad value, what the error must name, the values that are valid there: not garbage)
CASES = [
    (["demo", "--days", "{}"], "--days", lambda v: _int_in(v, 1, 5_000)),
    (["demo", "--view", "{}"], "view", lambda v: v in VIEW_NAMES[:2]),
    (["materialize", "--view", "{}", "--start", "2026-01-03"], "view", lambda v: v in VIEW_NAMES),
    (["materialize", "--view", "user_activity", "--start", "{}"], "start", _iso_day),
    (["materialize", "--view", "user_activity", "--start", "2026-01-03", "--end", "{}"], "end", _iso_day),
    (["online", "--view", "user_activity", "--entity", "{}"], "entity", lambda v: _int_in(v, -(2**63), 2**63 - 1)),
    (["online", "--view", "{}", "--entity", "1"], "view", lambda v: v in VIEW_NAMES),
    (["online", "--view", "user_activity", "--entity", "1", "--features", "{}"], "feature",
     lambda v: v == "" or set(v.split(",")) <= {"sessions_7d", "avg_session_duration_sec", "messages_sent_7d",
                                                "tools_used_7d", "preferred_model", "total_tokens_7d"}),
    (["stream", "--rate", "{}"], "--rate", lambda v: _int_in(v, 1, 10**30)),
    (["stream", "--seconds", "{}"], "--seconds", _seconds),
    (["stream", "--batch-interval", "{}"], "--batch-interval", _seconds),
    (["stream", "--users", "{}"], "--users", lambda v: _int_in(v, 1, 10**30)),
    (["serve", "--port", "{}"], "--port", lambda v: _int_in(v, 1, 65535)),
    (["serve", "--workers", "{}"], "--workers", lambda v: _int_in(v, 1, 10**30)),
    (["serve", "--host", "{}"], "--host", lambda v: bool(v) and len(v) <= 255 and v.isprintable() and not any(
        c.isspace() for c in v) and not v.startswith("-")),  # (a valid one would start the server)
    (["remove", "{}"], "view", lambda v: v.startswith("-")),  # an option, e.g. --help
    (["remove", "user_activity", "--version", "{}"], "--version", lambda v: _int_in(v, 1, 10**30)),
    (["history", "--view", "{}"], "view", lambda v: re.fullmatch(r"[a-z][a-z0-9_]{0,62}", v) is not None),
]


def run_main(argv: list[str]) -> tuple[int, str]:
    """`main(argv)` in this process: its exit status and its stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
    return code, err.getvalue()


def assert_one_error_line(code, stderr: str, names: str) -> None:
    lines = [line for line in stderr.splitlines() if not line.startswith("warning:")]
    assert code in (1, 2), (code, stderr[:500])
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[:500]
    assert names in lines[0], lines[0][:500]
    assert len(stderr) < 2_000, stderr[:500]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """The CLI's environment: an embedded platform in a fresh home (nothing materialized)."""
    settings = make_embedded_settings(tmp_path_factory.mktemp("cli_fuzz"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.as_env().items():
            patch.setenv(name, value)
        yield settings


@pytest.mark.parametrize(("argv", "names", "valid"), CASES, ids=[" ".join(c[0]) for c in CASES])
@settings(max_examples=25)
@given(value=garbage)
def test_bad_arguments_are_one_error_line(cli_env, argv, names, valid, value):
    assume(not valid(value))
    code, stderr = run_main([value if part == "{}" else part for part in argv])
    assert_one_error_line(code, stderr, names)


@pytest.mark.parametrize(("argv", "names"), [
    (["online", "--view", "user_activity", "--entity", "abc"], "--entity must be an integer user_id"),
    (["online", "--view", "user_activity", "--entity", "1.5"], "--entity must be an integer user_id"),
    (["demo", "--days", "-5"], "argument --days: must be a positive integer, not '-5'"),
    (["demo", "--days", "100000"], "--days 100000 reaches before the first partition 2026-01-01"),
    (["demo", "--view", "user_realtime"], "--view user_realtime is fed by push source"),
    (["stream", "--seconds", "nan"], "argument --seconds: must be a positive number of seconds, not 'nan'"),
    (["nope", "x" * 100_000], "argument command: invalid choice"),
])
def test_named_bad_arguments(cli_env, argv, names):
    code, stderr = run_main(argv)
    assert_one_error_line(code, stderr, names)


def test_the_installed_command_prints_one_line_for_bad_arguments(embedded_settings):
    for args, status, line in [
        (["online", "--view", "user_activity", "--entity", "abc"], 1,
         "error: --entity must be an integer user_id for view user_activity, not 'abc'"),
        (["demo", "--days", "-5"], 2, "error: argument --days: must be a positive integer, not '-5' "
                                      "(`feature-platform demo --help` shows the usage)"),
    ]:
        done = cli(embedded_settings, *args)
        assert (done.returncode, done.stderr) == (status, line + "\n")
