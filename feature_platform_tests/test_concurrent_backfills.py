"""Two processes backfilling overlapping ranges at once, on both profiles: no duplicate offline rows, every
partition equal to its definition, and online each entity's newest value (newest-wins inside the store)."""

from __future__ import annotations

import multiprocessing as mp
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
from chat_activity.user_activity import SPEC

from feature_platform.compute.window_aggregate import aggregate_day
from feature_platform.config import Settings
from feature_platform.demo.generator import generate_day
from feature_platform.platform import FeaturePlatform
from feature_platform_tests.helpers import write_sessions

FIRST, LAST = date(2026, 3, 1), date(2026, 3, 28)
RANGES = [(FIRST, date(2026, 3, 20)), (date(2026, 3, 8), LAST)]  # overlapping: 03-08..03-20 written twice


def _backfill(env: dict, first: date, last: date) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    FeaturePlatform(Settings.from_env(env)).materialize("user_activity", first, last)


def _open_instance(env: dict, start) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    platform = FeaturePlatform(Settings.from_env(env))
    start.wait()
    platform.instance().get_runs()


def test_processes_opening_a_fresh_home_at_once(embedded_settings):
    """Six processes open the Dagster instance of a fresh embedded home together: each would create Dagster's
    SQLite tables ("table snapshots already exists", seen in CI) were it not for the home's instance lock."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(6)
    workers = [ctx.Process(target=_open_instance, args=(embedded_settings.as_env(), start)) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert [w.exitcode for w in workers] == [0] * 6


@pytest.fixture
def settings(profile_settings):
    return profile_settings.with_(backfill_days_per_run=5)  # several runs per process, interleaving with the other's


def test_overlapping_backfills_in_two_processes(settings):
    raw = pd.concat([generate_day(FIRST + timedelta(days=i), 300, seed=4) for i in range(-8, 28)], ignore_index=True)
    write_sessions(settings.sessions_path, raw)
    FeaturePlatform(settings).apply()  # the registry exists before the backfills, as in a deployment
    env = settings.as_env() | {"FEATURE_PLATFORM_SESSIONS_PATH": str(settings.sessions_path)}
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_backfill, args=(env, a, b)) for a, b in RANGES]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
    assert [w.exitcode for w in workers] == [0, 0]

    platform = FeaturePlatform(settings)
    table = platform.offline_table("user_activity")
    assert not table.duplicated(["user_id", "event_timestamp"]).any()
    days = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    cols = ["user_id", *SPEC.feature_names, "event_timestamp"]
    want = pd.concat([aggregate_day(SPEC, raw, d) for d in days], ignore_index=True)
    pd.testing.assert_frame_equal(table[cols].reset_index(drop=True), want[cols], check_dtype=False)

    newest = want.drop_duplicates("user_id", keep="last").reset_index(drop=True)
    got = platform.online_features([f"user_activity:{f}" for f in SPEC.feature_names],
                                   [{"user_id": int(u)} for u in newest["user_id"]], with_metadata=True,
                                   now=datetime(2026, 3, 29, 1, tzinfo=timezone.utc))
    assert (got["sessions_7d__event_timestamp"].to_numpy() == pd.to_datetime(newest["event_timestamp"]).to_numpy()).all()
    live = (got["total_tokens_7d__status"] == "present").to_numpy()
    assert live.sum() > 100
    assert (got.loc[live, "total_tokens_7d"].astype("int64").to_numpy() == newest.loc[live, "total_tokens_7d"].to_numpy()).all()


@pytest.mark.services
def test_first_writers_create_the_offline_schema_and_table_at_once(services_settings):
    """Eight writers' first partition writes into a database with no offline schema yet, released together:
    PostgreSQL's CREATE ... IF NOT EXISTS alone raises UniqueViolation for all but one of them (seen in CI)."""
    import threading

    from feature_platform.stores.offline_postgres import PostgresOfflineStore

    rows = aggregate_day(SPEC, generate_day(date(2026, 3, 1), 50, seed=5), date(2026, 3, 1))
    start, errors = threading.Barrier(8), []

    def write(i: int) -> None:
        store = PostgresOfflineStore(services_settings)  # a fresh store: it has not created anything yet
        day = date(2026, 3, 1) + timedelta(days=i)
        mine = rows.assign(event_timestamp=store.partition_timestamp(day), created_timestamp=pd.Timestamp.now(tz="UTC"))
        start.wait()
        try:
            store.write_partition(SPEC, day, mine)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(PostgresOfflineStore(services_settings).partitions(SPEC)) == 8
