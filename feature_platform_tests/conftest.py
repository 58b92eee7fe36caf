"""Shared fixtures: an embedded platform in a temp dir, and the real services (PostgreSQL + Redis)."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import redis
from hypothesis import settings as hypothesis_settings

from feature_platform.config import Settings
from feature_platform_tests.realtime_events import clock

warnings.filterwarnings("ignore", message=".*(beta|preview|superseded|deprecated).*")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Property tests: under CI=true the "ci" profile, the same examples on every run (derandomized: seeded from each
# test function; no example database), so a green main stays green; locally the "dev" profile keeps the random
# search, which finds new failures. Neither has a deadline (a busy machine must not fail a test on timing), and a
# failure prints its reproduction blob. HYPOTHESIS_PROFILE overrides the choice. Tests' own @settings set only
# example counts, deadlines and health checks, so these choices hold for every test.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
hypothesis_settings.register_profile("dev", print_blob=True, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))

# A database index of its own, flushed by the tests; override it to run two suites side by side.
TEST_REDIS_DB = int(os.environ.get("FEATURE_PLATFORM_TEST_REDIS_DB", "13"))


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
    _require("PostgreSQL", lambda: psycopg.connect(base.pg_conninfo("postgres")).close())
    _require("Redis", lambda: redis.Redis(host=base.redis_host, port=base.redis_port, socket_timeout=3).ping())
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


@pytest.fixture
def fresh_clock():
    """The push tests' clock, reset to this test's start."""
    return clock.reset()


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    return make_embedded_settings(tmp_path)


def _require(service: str, probe) -> None:
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the service
        message = f"{service} is not reachable: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: services tests never skip)")
        pytest.skip(message)


@pytest.fixture
def services_settings(tmp_path: Path):
    with services_settings_in(tmp_path) as settings:
        yield settings
