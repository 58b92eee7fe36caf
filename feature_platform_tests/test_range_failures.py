"""A range run that fails part-way leaves the offline table, the online store and Dagster's record agreeing, on
both profiles and whatever failed: the days before the failure are written offline, written online and
recorded as materialized, or none of them are (issue 19 item 3).

The failures are real where the test can cause them (a bad raw row, a PostgreSQL connection cut by the
TCP proxy of test_offline_faults, a private redis-server stopped or refusing writes) and injected where
it cannot (a compute error, a full disk, a validation failure, a check that cannot be evaluated).
"""

from __future__ import annotations

import errno
import sqlite3
import types
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pandas as pd
import psycopg
import pytest
from chat_activity.user_activity import SPEC

import feature_platform as fp
from feature_platform import pipeline, runtime
from feature_platform.compute import engine
from feature_platform.compute.window_aggregate import aggregate_day
from feature_platform.demo.generator import generate_day
from feature_platform.feast_format.sqlite_features import SqliteFeatures
from feature_platform.platform import FeaturePlatform
from feature_platform.stores import offline_parquet
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP, day_end
from feature_platform_tests.helpers import (
    PrivateRedis,
    make_embedded_settings,
    services_settings_in,
    settings_of,
    write_sessions,
)
from feature_platform_tests.test_offline_faults import PgProxy, wait_for_writers_gone

FEATURES = [f"user_activity:{f}" for f in SPEC.feature_names]
USERS = 60
FIRST = date(2026, 3, 2)
DAYS = [FIRST + timedelta(days=i) for i in range(8)]  # three chunks of 3 days (COMPUTE_CHUNK_DAYS below)
BAD = DAYS[4]  # the failing day: the second day of the second chunk
NOW = datetime.combine(DAYS[-1] + timedelta(days=1), datetime.min.time(), timezone.utc) + timedelta(hours=1)


def told(exc: BaseException) -> str:
    """The error's message and its notes (what the kept or restored days are is a note on the run's error)."""
    return "\n".join([str(exc), *getattr(exc, "__notes__", ())])


def raw(first: date, last: date, seed: int = 3) -> pd.DataFrame:
    days = (last - first).days + 1
    return pd.concat([generate_day(first + timedelta(days=i), USERS, seed=seed) for i in range(days)], ignore_index=True)


RAW = raw(FIRST - timedelta(days=8), DAYS[-1])
USER_IDS = sorted(int(u) for u in RAW["user_id"].unique())


@pytest.fixture
def chunks_of_three(monkeypatch):
    monkeypatch.setattr(runtime, "COMPUTE_CHUNK_DAYS", 3)


@pytest.fixture
def no_tls(monkeypatch):
    monkeypatch.setenv("PGSSLMODE", "disable")
    monkeypatch.setenv("PGGSSENCMODE", "disable")


def agreed_days(platform: FeaturePlatform, now: datetime = NOW) -> list[date]:
    """The partitions kept, once the three places are seen to agree on them: the offline partitions are the
    ones Dagster records as materialized, and each entity's online value is its newest offline row."""
    offline = platform.runtime.offline.partitions(SPEC)
    recorded = recorded_days(platform)
    assert offline == recorded, f"offline {offline} != recorded by Dagster {recorded}"
    table = platform.offline_table(SPEC.name)  # sorted by feature timestamp, then key
    newest = table.drop_duplicates(SPEC.entity.join_key, keep="last").set_index(SPEC.entity.join_key)
    online = platform.online_features(FEATURES, [{"user_id": u} for u in USER_IDS], with_metadata=True, now=now)
    want = [newest[EVENT_TIMESTAMP].get(u) for u in USER_IDS]
    got = online["sessions_7d__event_timestamp"].tolist()
    assert [None if pd.isna(t) else pd.Timestamp(t) for t in got] == \
           [None if t is None else pd.Timestamp(t) for t in want], "online is not the newest offline row of each entity"
    present = online["sessions_7d__status"] == "present"
    assert online.loc[present, "total_tokens_7d"].astype("int64").tolist() == \
           [int(newest.loc[u, "total_tokens_7d"]) for u, p in zip(USER_IDS, present) if p]
    fresh = platform.freshness().set_index("view").loc[SPEC.name]
    assert (pd.isna(fresh["newest_offline"]) and pd.isna(fresh["newest_online"])) or \
           fresh["newest_offline"] == fresh["newest_online"]
    return offline


def offline_rows(platform: FeaturePlatform) -> pd.DataFrame:
    return platform.offline_table(SPEC.name).drop(columns=[CREATED_TIMESTAMP])


def online_rows(platform: FeaturePlatform) -> pd.DataFrame:
    return platform.online_features(FEATURES, [{"user_id": u} for u in USER_IDS], with_metadata=True, now=NOW)


def recorded_days(platform: FeaturePlatform) -> list[date]:
    return sorted(date.fromisoformat(k) for k in platform.instance().get_materialized_partitions(dg.AssetKey(SPEC.name)))


def reference(root, runs: list[tuple[pd.DataFrame, date, date]]) -> FeaturePlatform:
    """An embedded platform that ran `runs` (raw sessions, first, last) in order, without any fault."""
    settings = make_embedded_settings(root)
    platform = FeaturePlatform(settings)
    for sessions, first, last in runs:
        write_sessions(settings.sessions_path, sessions)
        platform.materialize("user_activity", first, last)
    return platform


# --- the scenario -------------------------------------------------------------------------------


def test_a_bad_raw_row_mid_range_keeps_the_days_before_it_in_all_three_places(tmp_path, profile, monkeypatch):
    """38 raw days, one session with duration_sec=-5 on 2026-12-01, materialize 2026-11-06..2026-12-05: the
    first chunk of 16 days was written before the second chunk's raw read failed."""
    monkeypatch.setattr(runtime, "COMPUTE_CHUNK_DAYS", 16)  # the chunks
    first, last = date(2026, 11, 6), date(2026, 12, 5)
    sessions = raw(date(2026, 10, 29), last)
    bad = sessions.index[sessions[EVENT_TIMESTAMP].dt.date == date(2026, 12, 1)][0]
    sessions.loc[bad, "duration_sec"] = -5.0
    with settings_of(profile, tmp_path) as settings:
        write_sessions(settings.sessions_path, sessions)
        platform = FeaturePlatform(settings)
        with pytest.raises(fp.FeaturePlatformError, match="duration_sec") as failed:
            platform.materialize("user_activity", first, last)
        kept = [first + timedelta(days=i) for i in range(16)]
        assert f"partitions {kept[0]}..{kept[-1]} (16) were written offline and online" in told(failed.value)
        assert agreed_days(platform, now=day_end(last)) == kept


# --- each failure path, on both profiles -----------------------------------------------------------------


def _bad_raw_row(platform, monkeypatch):
    sessions = RAW.copy()
    sessions.loc[sessions.index[sessions[EVENT_TIMESTAMP].dt.date == BAD][0], "tokens"] = -1
    write_sessions(platform.settings.sessions_path, sessions)


def _compute_error(platform, monkeypatch):
    real = engine.aggregate_chunk

    def aggregate_chunk(spec, frame, days):
        if BAD in days:
            raise OverflowError("int64 sum overflowed (injected)")
        return real(spec, frame, days)

    monkeypatch.setattr(engine, "aggregate_chunk", aggregate_chunk)


def _validation_failure(platform, monkeypatch):
    real = pipeline.validate

    def validate(spec, rows):
        hit = (rows[EVENT_TIMESTAMP] == pd.Timestamp(day_end(BAD))).to_numpy().nonzero()[0]
        if len(hit):
            return pd.DataFrame({"column": ["sessions_7d"], "check": ["injected"], "index": [rows.index[hit[0]]],
                                 "failure_case": [1], "schema_context": ["Column"], "check_number": [0]})
        return real(spec, rows)

    monkeypatch.setattr(pipeline, "validate", validate)


def _disk_full(platform, monkeypatch):
    real = offline_parquet.pq.write_table

    def write_table(table, where, **kwargs):
        if f".{BAD.isoformat()}." in str(where):
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real(table, where, **kwargs)

    monkeypatch.setattr(offline_parquet, "pq", types.SimpleNamespace(write_table=write_table))


# (failure, the days kept): a failure while computing a chunk keeps the chunks before it; one while writing a
# day keeps the days before it.
FAILURES = {
    "bad raw row": (_bad_raw_row, DAYS[:3]),
    "compute error": (_compute_error, DAYS[:3]),
    "validation failure": (_validation_failure, DAYS[:4]),
    "offline write error": (_disk_full, DAYS[:4]),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failure_mid_range_keeps_the_days_before_it_in_all_three_places(tmp_path, monkeypatch, chunks_of_three,
                                                                          profile, failure):
    inject, kept = FAILURES[failure]
    if profile == "services" and inject is _disk_full:
        pytest.skip("the services profile's offline write faults are the PostgreSQL proxy tests below")
    with settings_of(profile, tmp_path) as settings:
        write_sessions(settings.sessions_path, RAW)
        platform = FeaturePlatform(settings)
        inject(platform, monkeypatch)
        with pytest.raises(fp.FeaturePlatformError) as failed:
            platform.materialize("user_activity", DAYS[0], DAYS[-1])
        assert f"partitions {kept[0]}..{kept[-1]} ({len(kept)}) were written offline and online" in told(failed.value)
        assert agreed_days(platform) == kept


@pytest.mark.services
@pytest.mark.parametrize("point", ["data", "commit-sent", "commit-late"])
def test_postgres_lost_mid_range_keeps_the_days_before_it_in_all_three_places(tmp_path, chunks_of_three, no_tls, point):
    """The fifth partition's COPY is cut: half-way through its data (rolled back), after COMMIT was sent (the
    server committed, the client cannot know), or as COMMIT is sent, which reaches the server only after the
    run has begun to undo its days (it commits late): either way that day ends as it was before the run, and
    the stores hold what a fault-free run of the days before it would have left."""
    proxy = PgProxy(SPEC.name)
    old = raw(FIRST - timedelta(days=8), DAYS[-1], seed=1)
    try:
        with services_settings_in(tmp_path) as settings:
            write_sessions(settings.sessions_path, old)
            FeaturePlatform(settings).materialize("user_activity", DAYS[0], DAYS[-1])  # the previous contents
            write_sessions(settings.sessions_path, RAW)  # corrected raw data: every day changes
            platform = FeaturePlatform(settings.with_(pg_port=proxy.port))
            proxy.arm(5, point)
            with pytest.raises(fp.FeaturePlatformError, match=f"writing partition {BAD} of 'user_activity' offline"):
                platform.materialize("user_activity", DAYS[0], DAYS[-1])
            assert proxy.stopped_at in (("data", "copy-done") if point == "data" else (point,))  # small: one CopyData
            wait_for_writers_gone(settings)
            proxy.disarm()
            assert platform.runtime.offline.partitions(SPEC) == recorded_days(platform) == DAYS

            want = reference(tmp_path / "reference", [(old, DAYS[0], DAYS[-1]), (RAW, DAYS[0], DAYS[3])])
            got, expected = offline_rows(platform), offline_rows(want)
            pd.testing.assert_frame_equal(got, expected, check_dtype=False)
            assert (got[EVENT_TIMESTAMP] == pd.Timestamp(day_end(BAD))).sum() > 10
            pd.testing.assert_frame_equal(online_rows(platform), online_rows(want))
    finally:
        proxy.close()


# --- the online write fails: nothing of the run is kept --------------------------------------------------


@contextmanager
def online_failing(profile: str, settings, monkeypatch, how: str):
    """Yield the settings to use; once `fail()` is called, every online write fails: SQLite's with an I/O
    error (injected), Redis refusing writes (`min-replicas-to-write`, its values kept) or stopped."""
    if profile == "embedded":
        def fail():
            def write(self, spec, rows, view=None):
                raise sqlite3.OperationalError("disk I/O error (injected)")
            monkeypatch.setattr(SqliteFeatures, "write", write)
        yield settings, fail
        return
    server = PrivateRedis().start()
    try:
        def fail():
            if how == "down":
                server.stop()
            else:
                server.client.config_set("min-replicas-to-write", 1)
        yield settings.with_(redis_port=server.port, redis_db=0), fail
    finally:
        server.stop()


def _before_online_write(monkeypatch, action) -> None:
    real = pipeline._write_online

    def write_online(runtime_, spec, latest):
        action()
        return real(runtime_, spec, latest)

    monkeypatch.setattr(pipeline, "_write_online", write_online)


@pytest.mark.parametrize("mid_range", [False, True], ids=["at the end", "after a failure mid-range"])
def test_an_online_write_failure_restores_the_offline_partitions(tmp_path, monkeypatch, chunks_of_three, profile,
                                                                 mid_range):
    """The run had replaced partitions offline (over an earlier run's), then could not write online (at the end
    of the run, or when keeping the days before a failure): every partition is put back as it was, online
    and Dagster's record are the earlier run's, and a re-run completes."""
    with settings_of(profile, tmp_path) as base, online_failing(profile, base, monkeypatch, "refuse") as (settings, fail):
        write_sessions(settings.sessions_path, raw(FIRST - timedelta(days=8), DAYS[-1], seed=1))
        platform = FeaturePlatform(settings)
        platform.materialize("user_activity", DAYS[0], DAYS[5])  # the earlier run: days 0-5 exist
        before = offline_rows(platform), online_rows(platform)
        assert agreed_days(platform) == DAYS[:6]

        if mid_range:
            _bad_raw_row(platform, monkeypatch)
        else:
            write_sessions(settings.sessions_path, RAW)  # every day changes
        _before_online_write(monkeypatch, fail)
        with pytest.raises(Exception) as failed:
            platform.materialize("user_activity", DAYS[0], DAYS[-1])
        assert "restored, so no partition of this run is kept" in told(failed.value)
        pd.testing.assert_frame_equal(offline_rows(platform), before[0])
        pd.testing.assert_frame_equal(online_rows(platform), before[1])
        assert agreed_days(platform) == DAYS[:6]

        monkeypatch.undo()
        monkeypatch.setattr(runtime, "COMPUTE_CHUNK_DAYS", 3)
        if profile == "services":
            platform.runtime.online.features.client.config_set("min-replicas-to-write", 0)
        write_sessions(settings.sessions_path, RAW)
        platform.materialize("user_activity", DAYS[0], DAYS[-1])  # the re-run completes
        assert platform.runtime.offline.partitions(SPEC) == recorded_days(platform) == DAYS


@pytest.mark.services
def test_redis_down_at_the_online_write_leaves_nothing_anywhere(tmp_path, monkeypatch, chunks_of_three):
    with services_settings_in(tmp_path) as base, online_failing("services", base, monkeypatch, "down") as (settings, fail):
        write_sessions(settings.sessions_path, RAW)
        platform = FeaturePlatform(settings)
        platform.apply()
        _before_online_write(monkeypatch, fail)
        with pytest.raises(fp.FeaturePlatformError, match="Redis at 127.0.0.1:.* is unreachable"):
            platform.materialize("user_activity", DAYS[0], DAYS[-1])
        assert platform.runtime.offline.partitions(SPEC) == []
        assert platform.instance().get_materialized_partitions(dg.AssetKey(SPEC.name)) == set()


# --- after the writes: Dagster's side --------------------------------------------------------------------


def test_a_check_failing_after_the_writes_still_records_every_partition(tmp_path, monkeypatch, chunks_of_three, profile):
    """The skew check reads the online store back after the writes; if that fails, the run fails, but its
    partitions, written in both stores, are recorded as materialized."""
    from feature_platform.defs import feature_views

    def skew_reports(*args, **kwargs):
        raise fp.StoreUnavailableError("reading online features: Redis is unreachable (injected)")

    monkeypatch.setattr(feature_views, "skew_reports", skew_reports)
    with settings_of(profile, tmp_path) as settings:
        write_sessions(settings.sessions_path, RAW)
        platform = FeaturePlatform(settings)
        with pytest.raises(fp.FeaturePlatformError, match="injected"):
            platform.materialize("user_activity", DAYS[0], DAYS[-1])
        assert agreed_days(platform) == DAYS
        with pytest.raises(fp.FeaturePlatformError, match="injected"):
            platform.materialize("user_activity", BAD)  # a single-partition run alike
        assert agreed_days(platform) == DAYS


# --- the offline journal itself --------------------------------------------------------------------------


def test_the_offline_journal_restores_exactly_what_the_run_replaced(tmp_path, profile):
    """Two partitions replaced and a new one added; settled keeping the first: it keeps its new rows, the
    second gets its old rows back exactly, the new one is gone, and the journal is dropped."""
    old, new = raw(FIRST - timedelta(days=8), DAYS[2], seed=1), RAW
    stamp = pd.Timestamp("2026-03-20T00:00Z")

    def rows(sessions, day):
        return aggregate_day(SPEC, sessions, day).assign(**{CREATED_TIMESTAMP: stamp})

    with settings_of(profile, tmp_path) as settings:
        store = FeaturePlatform(settings).runtime.offline
        for day in DAYS[:2]:
            store.write_partition(SPEC, day, rows(old, day))
        before = store.read(SPEC)
        writes = store.partition_writes(SPEC)
        for day in DAYS[:3]:
            writes.write(day, rows(new, day))
        assert store.partitions(SPEC) == DAYS[:3]
        writes.settle(keep={DAYS[0]})
        after = store.read(SPEC)
        assert store.partitions(SPEC) == DAYS[:2]
        for day, want in ((DAYS[0], rows(new, DAYS[0])), (DAYS[1], before)):
            got = after[after[EVENT_TIMESTAMP] == pd.Timestamp(day_end(day))].reset_index(drop=True)
            want = want[want[EVENT_TIMESTAMP] == pd.Timestamp(day_end(day))].reset_index(drop=True)
            pd.testing.assert_frame_equal(got, want[got.columns], check_dtype=False)
        if profile == "embedded":
            assert not (settings.offline_dir / ".undo").exists()
        else:
            with psycopg.connect(settings.pg_conninfo(settings.pg_db)) as conn:
                assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'offline_undo'").fetchone()[0] == 0
