"""Configuration errors (issue 19 item 12): every FEATURE_PLATFORM_* variable is checked by Settings.from_env,
and a bad value is a one-line ConfigurationError naming the variable, quoting its value cut short, and never
showing a secret's value; the CLI prints it as one `error:` line. Fuzzed over every variable of ENV_VARS."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from feature_platform import cli
from feature_platform.backends import repo_config
from feature_platform.config import ENV_VARS, PARTITIONS_RANGE, SECRET_VARS, Settings
from feature_platform.demo.generator import generate_day
from feature_platform.errors import ConfigurationError, FeaturePlatformError
from feature_platform.platform import FeaturePlatform
from feature_platform_tests.feast_format.stock_feast import parse_redis_connection_string
from feature_platform_tests.helpers import write_sessions

MARKER = "Zq9sEcReT"  # in every generated secret: it must never reach a message
GARBAGE = ["", " ", "bogus", "-1", "0", "65536", "1.5", "1e3", "nan", "０", "١٢", "1_000", "+5", " 5", "5 ",
           "99999999999999999999999", "9" * 5000, "2025-13-01", "1600-01-01", "9999-12-31", "2025-02-30", "20250101",
           "x\x00y", "a\nb", "\t", "a,b", "a:b", "host:1,host:x", "=", "password=x", "ftp://h/x", "http://",
           "http://h:99999/x", "https://hooks.example.com/T/B/tok", "x" * 100_000, "ü" * 40, "\U0001F600",
           "local[2]", "spark://h:7077", "services", "embedded", "spark", "celery", "/tmp/x", "~/x", "a" * 64,
           "\udc80"]  # the last: a byte the OS could not decode as UTF-8
values = st.one_of(st.sampled_from(GARBAGE), st.text(max_size=30),
                   st.builds(lambda c, n: c * n, st.characters(), st.integers(1, 100_000)))


def check_error(exc: BaseException, name: str, value: str) -> None:
    message = str(exc)
    assert isinstance(exc, ConfigurationError) and isinstance(exc, ValueError), repr(exc)[:300]
    assert name in message, message[:300]
    assert "\n" not in message and len(message) < 500, message[:300]
    if name in SECRET_VARS:
        assert MARKER not in message and "not shown" in message, message


@settings(max_examples=300)
@given(st.sampled_from(sorted(ENV_VARS)), values, st.sampled_from(["embedded", "services"]))
def test_every_variable_is_checked_with_a_short_error_naming_it(name, value, profile):
    if name in SECRET_VARS:
        value = MARKER + value
    env = {"FEATURE_PLATFORM_PROFILE": profile, name: value}
    try:
        got = Settings.from_env(env)
    except FeaturePlatformError as exc:
        check_error(exc, name, value)
        return
    # Accepted: the value round-trips through the environment the platform hands to its subprocesses, and
    # the drivers' connection strings carry it unchanged (Feast's Redis string splits on ',' and '=').
    assert Settings.from_env(got.as_env()) == got
    if profile == "services" and not got.redis_cluster_nodes:
        nodes, params = parse_redis_connection_string(repo_config(got).online_store.connection_string)
        assert nodes == [{"host": got.redis_host, "port": str(got.redis_port)}]
        assert params == {"db": got.redis_db, **({"password": got.redis_password} if got.redis_password else {})}
        conninfo = conninfo_to_dict(got.pg_conninfo())
        assert (conninfo["host"], conninfo["user"], conninfo["dbname"]) == (got.pg_host, got.pg_user, got.pg_db)
        assert conninfo.get("password", "") == got.pg_password


@pytest.mark.parametrize(("name", "value", "says"), [
    ("FEATURE_PLATFORM_PROFILE", "bogus", "must be 'embedded' or 'services', not 'bogus'"),
    ("FEATURE_PLATFORM_REDIS_PORT", "63x9", "must be a TCP port from 1 to 65535, not '63x9'"),
    ("FEATURE_PLATFORM_PG_PORT", "0", "must be a TCP port from 1 to 65535, not '0'"),
    ("FEATURE_PLATFORM_PARTITIONS_START", "2025-13-01", "must be an ISO day (YYYY-MM-DD) from 1970-01-01"),
    ("FEATURE_PLATFORM_PARTITIONS_START", "1600-01-01", "not '1600-01-01'"),  # pandas' ns range: OverflowError
    ("FEATURE_PLATFORM_PARTITIONS_START", "9999-12-31", "not '9999-12-31'"),
    ("FEATURE_PLATFORM_REDIS_DB", "-1", "must be a Redis database number"),
    ("FEATURE_PLATFORM_DEMO_USERS", "1e3", "must be a positive integer, not '1e3'"),
    ("FEATURE_PLATFORM_PG_DB", "d" * 64, "1 to 63 bytes"),  # PostgreSQL would cut it silently
    ("FEATURE_PLATFORM_HOME", "", "must be a file system path"),  # not silently the working directory
    ("FEATURE_PLATFORM_REDIS_HOST", "red is", "must be a host name"),
    ("FEATURE_PLATFORM_PG_PASSWORD", f"{MARKER}\x00", "without a NUL character (its value is a secret: not shown)"),
    ("FEATURE_PLATFORM_ALERT_SLACK_WEBHOOK_URL", f"hooks.slack.com/{MARKER}", "an http(s) URL"),
])
def test_named_bad_values(name, value, says):
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({name: value})
    assert str(info.value).startswith(name) and says in str(info.value), str(info.value)
    check_error(info.value, name, value)


def test_a_huge_value_is_quoted_short():
    with pytest.raises(ConfigurationError, match=r"FEATURE_PLATFORM_ENGINE must be .*\.\.\.\(100002 chars\)"):
        Settings.from_env({"FEATURE_PLATFORM_ENGINE": "x" * 100_000})


def test_the_first_allowed_partitions_start_materializes_and_reads(tmp_path):
    """The lower bound is not only accepted: its first days compute, store and read back (1600-01-01 overflowed)."""
    low = PARTITIONS_RANGE[0]
    settings = Settings.from_env({"FEATURE_PLATFORM_PARTITIONS_START": low.isoformat(),
                                  "FEATURE_PLATFORM_HOME": str(tmp_path / "home"),
                                  "FEATURE_PLATFORM_SESSIONS_PATH": str(tmp_path / "sessions")})
    write_sessions(settings.sessions_path, pd.concat([generate_day(low + timedelta(days=d), 20) for d in range(3)]))
    platform = FeaturePlatform(settings)
    assert platform.materialize("user_activity", low, low + timedelta(days=2)) == [
        (low + timedelta(days=d)).isoformat() for d in range(3)]
    table = platform.offline_table("user_activity")
    user = int(table["user_id"].iloc[0])
    online = platform.online_features(["user_activity:sessions_7d"], [{"user_id": user}], with_metadata=True,
                                      now=datetime(1970, 1, 4, 1, tzinfo=timezone.utc))
    assert online["sessions_7d__status"].tolist() == ["present"]
    latest = table[table["event_timestamp"] == table["event_timestamp"].max()]
    assert online["sessions_7d"].tolist() == latest.loc[latest["user_id"] == user, "sessions_7d"].tolist()


def test_valid_settings_are_unchanged():
    env = {"FEATURE_PLATFORM_PROFILE": "services", "FEATURE_PLATFORM_REDIS_PASSWORD": "a,b \"true\" ü",
           "FEATURE_PLATFORM_PG_PASSWORD": "s3 cr'et/@,x\\y", "FEATURE_PLATFORM_PARTITIONS_START": "2026-01-01",
           "FEATURE_PLATFORM_ALERT_WEBHOOK_URL": "https://hooks.example.com/a?b=c", "FEATURE_PLATFORM_REDIS_DB": "7"}
    settings = Settings.from_env(env)
    assert (settings.redis_password, settings.redis_db) == ("a,b \"true\" ü", 7)
    assert Settings.from_env(settings.as_env()) == settings
    assert Settings.from_env({}) == Settings.from_env({name: default for name, (default, _) in ENV_VARS.items()
                                                       if name != "FEATURE_PLATFORM_SESSIONS_PATH"})


def test_the_cli_prints_a_bad_variable_as_one_line(monkeypatch, capsys):
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_PORT", "six")
    assert cli.main(["freshness"]) == 1
    err = capsys.readouterr().err
    assert err == "error: FEATURE_PLATFORM_REDIS_PORT must be a TCP port from 1 to 65535, not 'six'\n"
    monkeypatch.setenv("FEATURE_PLATFORM_ALERT_WEBHOOK_URL", f"hooks.example.com/{MARKER}")  # no scheme
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_PORT", "6379")
    assert cli.main(["history"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: FEATURE_PLATFORM_ALERT_WEBHOOK_URL") and err.count("\n") == 1 and MARKER not in err


def test_the_installed_command_prints_no_traceback_for_a_bad_profile(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FEATURE_PLATFORM_")},
           "FEATURE_PLATFORM_PROFILE": "bogus", "FEATURE_PLATFORM_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "feature_platform.cli", "freshness"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr == "error: FEATURE_PLATFORM_PROFILE must be 'embedded' or 'services', not 'bogus'\n"


@pytest.mark.parametrize("name", ["FEATURE_PLATFORM_REPO", "FEATURE_PLATFORM_HOME", "FEATURE_PLATFORM_SESSIONS_PATH"])
def test_a_relative_path_is_within_the_limit_once_made_absolute(name):
    """A relative path grows by the working directory when made absolute (the form handed to runs and child
    processes): within 4096 bytes as written but beyond it then, it is refused naming the variable."""
    value = "p/" * 2047  # 4094 bytes as written (a path: a module name has no "/")
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({name: value})
    assert str(info.value).startswith(name) and "once made absolute" in str(info.value), str(info.value)
    fits = "p" * 16
    assert Settings.from_env(Settings.from_env({name: fits}).as_env()) == Settings.from_env({name: fits})
