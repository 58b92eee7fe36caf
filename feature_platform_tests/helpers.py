"""What the tests share besides fixtures: the two profiles' settings, raw sessions on disk, free loopback ports,
a private `redis-server`, and the push tests' clock and batches. The fixtures that use them are in conftest.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import redis

from feature_platform.config import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# A database index of its own, flushed by the tests (this one and the next); override it to run two suites side by
# side. Under pytest-xdist each worker takes the pair after the previous worker's (gw0: N, N+1; gw1: N+2, N+3).
_BASE_REDIS_DB = int(os.environ.get("FEATURE_PLATFORM_TEST_REDIS_DB", "12"))
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
TEST_REDIS_DB = _BASE_REDIS_DB + 2 * _WORKER


def require(what: str, probe) -> None:
    """Skip the test when `probe()` fails; fail it under CI=true, where every dependency must be there."""
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure to reach it
        message = f"{what} is not available: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: tests never skip)")
        pytest.skip(message)


# --- settings of the two profiles ------------------------------------------------------------------------------


def make_embedded_settings(root: Path) -> Settings:
    return Settings.from_env({
        "FEATURE_PLATFORM_HOME": str(root / "home"),
        "FEATURE_PLATFORM_SESSIONS_PATH": str(root / "sessions"),
        "FEATURE_PLATFORM_PARTITIONS_START": "2026-01-01",
    })


@contextmanager
def services_settings_in(root: Path) -> Iterator[Settings]:
    """The services profile on a fresh PostgreSQL database and a flushed Redis database; dropped afterwards."""
    base = Settings.from_env({"FEATURE_PLATFORM_PROFILE": "services"})
    require("PostgreSQL", lambda: psycopg.connect(base.pg_conninfo("postgres")).close())
    require("Redis", lambda: redis.Redis(host=base.redis_host, port=base.redis_port, socket_timeout=3).ping())
    name = f"fp_test_{uuid.uuid4().hex[:10]}"
    settings = Settings.from_env({
        "FEATURE_PLATFORM_PROFILE": "services",
        "FEATURE_PLATFORM_HOME": str(root / "home"),
        "FEATURE_PLATFORM_SESSIONS_PATH": str(root / "sessions"),
        "FEATURE_PLATFORM_PARTITIONS_START": "2026-01-01",
        "FEATURE_PLATFORM_PG_DB": name,
        "FEATURE_PLATFORM_DAGSTER_PG_DB": name + "_dagster",
        "FEATURE_PLATFORM_REDIS_DB": str(TEST_REDIS_DB),
    })
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, db=TEST_REDIS_DB)
    client.flushdb()
    try:
        yield settings
    finally:
        client.flushdb()
        with psycopg.connect(base.pg_conninfo("postgres"), autocommit=True) as conn:
            for db in (name, name + "_dagster"):
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@contextmanager
def settings_of(profile: str, root: Path) -> Iterator[Settings]:
    """The settings of `profile` ("embedded" or "services") under `root`, for fixtures wider than one test."""
    if profile == "embedded":
        yield make_embedded_settings(root)
        return
    with services_settings_in(root) as settings:
        yield settings


# --- raw sessions ------------------------------------------------------------------------------------------------


def sessions_frame(rows: list[tuple]) -> pd.DataFrame:
    """Sessions from (user_id, session_id, iso_timestamp, duration, messages, tools, model, tokens)."""
    df = pd.DataFrame(rows, columns=["user_id", "session_id", "event_timestamp", "duration_sec", "message_count",
                                     "tool_invocations", "model", "tokens"])
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True, format="ISO8601")
    return df.astype({"user_id": "int64", "duration_sec": "float64", "message_count": "int64",
                      "tool_invocations": "int64", "tokens": "int64"})


def write_sessions(directory: Path, df: pd.DataFrame) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    df.to_parquet(directory / "sessions.parquet", index=False)
    return directory


# --- ports and a private redis-server ---------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis_server(port: int, password: str | None = None) -> subprocess.Popen:
    """Start `redis-server` on `port` without persistence and wait until it answers PING."""
    auth = ["--requirepass", password] if password else []
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no", *auth], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=password, socket_timeout=1)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError("redis-server did not start")


class PrivateRedis:
    """A `redis-server` of the test's own on a free loopback port, for tests that stop, freeze, restart or lock down
    Redis (the machine's Redis is never touched). Not started until `start()`."""

    def __init__(self, password: str | None = None):
        require("redis-server", _installed("redis-server"))
        self.port = free_port()
        self.password = password
        self.proc: subprocess.Popen | None = None
        self.client = redis.Redis(port=self.port, password=password)

    def start(self) -> PrivateRedis:
        self.proc = start_redis_server(self.port, self.password)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _installed(program: str):
    def probe() -> None:
        if shutil.which(program) is None:
            raise FileNotFoundError(f"{program} is not installed")
    return probe


# --- the push tests' clock and batches --------------------------------------------------------------------------


class TestClock:
    """The push tests' "now": reset at each test's start (the `fresh_clock` fixture), so a long suite
    does not age their events past the lag bounds or the view's one-hour TTL."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> pd.Timestamp:
        self.now = pd.Timestamp(datetime.now(timezone.utc)).floor("s")
        return self.now


clock = TestClock()


def event_batch(rows: list[tuple], now: pd.Timestamp) -> pd.DataFrame:
    """Pushed `user_realtime_events` rows, as producers send them: (user_id, seconds_ago, messages, tokens,
    minutes_ago) rows, event times relative to `now`."""
    return pd.DataFrame({
        "user_id": [r[0] for r in rows],
        "event_timestamp": [(now - pd.Timedelta(seconds=r[1])).isoformat() for r in rows],
        "current_session_messages": [r[2] for r in rows],
        "current_session_tokens": [r[3] for r in rows],
        "last_active_minutes_ago": [r[4] for r in rows],
    })
