"""A store that hangs instead of refusing: a peer that accepts TCP connections and never answers (a frozen
redis-server, stopped with SIGSTOP; a listening socket nobody reads, for PostgreSQL). Every read, write and
health check must fail with a clear error within its configured budget (issue 19 item 7: a frozen Redis hung
reads 38 s, the CLI `online` 59 s and `materialize` 64 s). The bounds asserted are generous (several times the
1 s budgets configured here) but far below the hangs."""

from __future__ import annotations

import signal
import socket
import threading
import time
from datetime import date, timedelta

import pandas as pd
import pytest
import requests
from chat_activity.user_activity import SPEC

from feature_platform.cli import main
from feature_platform.demo.generator import generate_day
from feature_platform.errors import StoreUnavailableError
from feature_platform.platform import FeaturePlatform
from feature_platform.serving.server import running_server
from feature_platform_tests.helpers import PrivateRedis, services_settings_in, write_sessions

D = date(2026, 4, 10)
FEATURES = [f"user_activity:{f}" for f in SPEC.feature_names]
BOUND_SEC = 15  # 1 s budgets: a failure well within this; the hangs took 38-64 s


def within(seconds: float, call) -> dict:
    """Run `call` on a daemon thread; it must end within `seconds` (a hang fails the test, it does not hang it).
    Returns {"value": ...} or {"error": ...}."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return outcome


def fails_within(seconds: float, call) -> BaseException:
    outcome = within(seconds, call)
    assert "error" in outcome, f"returned {outcome.get('value')!r}"
    return outcome["error"]


@pytest.fixture
def frozen_redis(tmp_path):
    """A services platform (1 s read and write budgets) whose private Redis holds one materialized partition,
    then is frozen (SIGSTOP) for the test and thawed afterwards."""
    server = PrivateRedis()
    server.start()
    with services_settings_in(tmp_path) as settings:
        settings = settings.with_(redis_port=server.port, redis_db=0, online_read_timeout_sec=1.0,
                                  online_write_timeout_sec=1.0)
        write_sessions(settings.sessions_path,
                       pd.concat([generate_day(D - timedelta(days=i), 100, seed=3) for i in range(9)]))
        platform = FeaturePlatform(settings)
        platform.materialize("user_activity", D)
        table = platform.offline_table("user_activity", D, D)
        assert len(platform.online_features(FEATURES, [{"user_id": int(table["user_id"].iloc[0])}])) == 1
        server.proc.send_signal(signal.SIGSTOP)
        try:
            yield platform, table
        finally:
            server.proc.send_signal(signal.SIGCONT)
            server.stop()


@pytest.mark.services
def test_a_frozen_redis_fails_reads_and_the_health_check_within_the_read_budget(frozen_redis):
    platform, table = frozen_redis
    rows = [{"user_id": int(u)} for u in table["user_id"].head(50)]
    for read in (lambda: platform.online_features(FEATURES, rows[:1]),
                 lambda: platform.online_features(FEATURES, rows, with_metadata=True, output="dict"),
                 lambda: platform.runtime.online.newest_timestamp(SPEC)):  # the watermark (freshness) read
        error = fails_within(BOUND_SEC, read)
        assert isinstance(error, StoreUnavailableError), repr(error)
        assert f"Redis at 127.0.0.1:{platform.settings.redis_port} is unreachable" in str(error)
    with running_server(platform) as url:
        started = time.monotonic()
        health = requests.get(url + "/health", timeout=60)
        assert time.monotonic() - started < BOUND_SEC
        assert health.status_code == 503 and health.json()["online_store"].startswith("error")
        started = time.monotonic()
        read = requests.post(url + "/get-online-features", json={"features": FEATURES, "entities": {"user_id": [1]}},
                             timeout=60)
        assert time.monotonic() - started < BOUND_SEC
        assert read.status_code == 503 and "unreachable" in read.json()["detail"]


@pytest.mark.services
def test_a_frozen_redis_fails_writes_within_the_write_budget(frozen_redis):
    platform, table = frozen_redis
    error = fails_within(BOUND_SEC, lambda: platform.runtime.online.write(SPEC, table))
    assert isinstance(error, StoreUnavailableError) and "unreachable" in str(error), repr(error)
    # A fresh process's first write also loads the newest-wins script: bounded the same way.
    fresh = FeaturePlatform(platform.settings)
    error = fails_within(BOUND_SEC, lambda: fresh.runtime.online.write(SPEC, table))
    assert isinstance(error, StoreUnavailableError) and "unreachable" in str(error), repr(error)
    error = fails_within(2 * BOUND_SEC, lambda: FeaturePlatform(platform.settings).materialize("user_activity", D))
    assert "Redis" in str(error) and "unreachable" in str(error), repr(error)
    now = pd.Timestamp.now(tz="UTC")
    events = pd.DataFrame({"user_id": [1], "event_timestamp": [now], "current_session_messages": [2],
                           "current_session_tokens": [20], "last_active_minutes_ago": [0.5]})
    for direct in (True, False):  # the low-latency path (online write) and the push stream
        error = fails_within(BOUND_SEC, lambda d=direct: platform.push("user_realtime_events", events, direct=d))
        assert isinstance(error, StoreUnavailableError) and "unreachable" in str(error), repr(error)


@pytest.mark.services
def test_the_cli_reads_with_the_budget_of_the_environment(frozen_redis, monkeypatch, capsys):
    platform, table = frozen_redis
    for name, value in platform.settings.as_env().items():
        monkeypatch.setenv(name, value)
    assert platform.settings.as_env()["FEATURE_PLATFORM_ONLINE_READ_TIMEOUT_SEC"] == "1.0"
    entity = str(int(table["user_id"].iloc[0]))
    assert within(2 * BOUND_SEC, lambda: main(["online", "--view", "user_activity", "--entity", entity])) == {"value": 1}
    assert f"Redis at 127.0.0.1:{platform.settings.redis_port} is unreachable" in capsys.readouterr().err


@pytest.fixture
def silent_peer():
    """A listening TCP socket that is never accepted from: connections complete (the kernel's backlog) and
    nothing is ever answered, as with a frozen server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.mark.services
def test_every_postgresql_connection_gives_up_on_a_frozen_server(silent_peer, tmp_path):
    """psycopg (offline store), the Feast registry's SQLAlchemy engine and Dagster's storage (psycopg2): each
    connection string the platform builds gives up connecting (libpq alone would wait forever, psycopg 130 s)."""
    import sqlalchemy
    from dagster_postgres.utils import pg_url_from_config

    from feature_platform.backends import dagster_instance_config, repo_config
    from feature_platform.config import Settings
    from feature_platform.stores.postgres import connect

    settings = Settings.from_env({"FEATURE_PLATFORM_PROFILE": "services", "FEATURE_PLATFORM_HOME": str(tmp_path),
                                  "FEATURE_PLATFORM_PG_PORT": str(silent_peer)})
    error = fails_within(BOUND_SEC, lambda: connect(settings))
    assert isinstance(error, StoreUnavailableError), repr(error)
    registry_url = repo_config(settings).registry.path
    error = fails_within(BOUND_SEC, lambda: sqlalchemy.create_engine(registry_url).connect())
    assert isinstance(error, sqlalchemy.exc.OperationalError), repr(error)
    dagster_url = pg_url_from_config(dagster_instance_config(settings, resolved=True)["storage"]["postgres"])
    error = fails_within(BOUND_SEC, lambda: sqlalchemy.create_engine(dagster_url).connect())
    assert isinstance(error, sqlalchemy.exc.OperationalError), repr(error)


def test_the_budgets_are_validated_settings():
    from feature_platform.config import Settings

    settings = Settings.from_env({"FEATURE_PLATFORM_ONLINE_READ_TIMEOUT_SEC": "0.5"})
    assert settings.online_read_timeout_sec == 0.5 and settings.online_write_timeout_sec == 10
    for bad in ("0", "-1", "nan", "inf", "two", ""):
        with pytest.raises(ValueError, match="FEATURE_PLATFORM_ONLINE_WRITE_TIMEOUT_SEC must be a number of seconds"):
            Settings.from_env({"FEATURE_PLATFORM_ONLINE_WRITE_TIMEOUT_SEC": bad})
    assert Settings.from_env(settings.as_env()) == settings
