"""Pushed batches for user_realtime: validation with dead-letter reasons, the sensor, Dagster runs,
idempotent offline writes, newest-wins online values, crash recovery, and the low-latency path."""

from __future__ import annotations

import json
import multiprocessing
from datetime import timedelta

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from chat_activity.user_realtime import SPEC

import feature_platform as fp
from feature_platform.definitions import build_definitions
from feature_platform.defs.resources import resources_for
from feature_platform.ingest import drain_direct_log, ingest_batch, transport_for
from feature_platform.push import prepare_batch
from feature_platform.stores.landing import LandingDirectory
from feature_platform.stores.redis_stream import RedisStreamTransport
from feature_platform_tests.helpers import clock, event_batch

FEATURES = [f"user_realtime:{f}" for f in SPEC.feature_names]
pytestmark = pytest.mark.usefixtures("fresh_clock")



def events(rows: list[tuple]) -> pd.DataFrame:
    return event_batch(rows, clock.now)


@pytest.fixture
def platform(profile_settings):
    return fp.FeaturePlatform(profile_settings)


def transport(platform):
    return transport_for(platform.runtime, SPEC)


def dead_rows(platform, batch_id: str) -> pd.DataFrame:
    t = transport(platform)
    if isinstance(t, LandingDirectory):
        return pd.read_parquet(t.dead / f"{batch_id}.parquet")
    (entry,) = [d for d in t.dead_letters() if d["batch_id"] == batch_id]
    return pd.DataFrame(json.loads(entry["rows"]))


def online(platform, users):
    return platform.online_features(FEATURES, [{"user_id": u} for u in users], with_metadata=True).set_index("user_id")


def test_bad_rows_get_a_reason_and_good_rows_still_land():
    batch = pd.DataFrame({
        "user_id": [1, "x", 3, 4, 5, 6, 1],
        "event_timestamp": [clock.now.isoformat(), clock.now.isoformat(), "2026-05-01T10:00:00", "not a time",
                            (clock.now + pd.Timedelta(hours=1)).isoformat(), clock.now.isoformat(), clock.now.isoformat()],
        "current_session_messages": [3, 1, 1, 1, 1, -2, 4],
        "current_session_tokens": [30, 1, 1, 1, 1, 1, 40],
        "last_active_minutes_ago": [0.5, 1, 1, 1, 1, 1, 0.1],
        "unrelated": "ignored",
    })
    prepared = prepare_batch(SPEC, batch, now=clock.now)
    assert prepared.accepted["user_id"].tolist() == [1] and prepared.duplicates == 1
    assert prepared.accepted["current_session_messages"].tolist() == [4]  # the last repeat of (user, time) wins
    reasons = dict(zip(prepared.rejected["user_id"], prepared.rejected["reason"]))
    assert reasons["x"] == "user_id: missing or not an integer"
    assert "timezone-naive" in reasons["3"]
    assert "not a timestamp" in reasons["4"]
    assert "in the future" in reasons["5"]
    assert "current_session_messages: failed greater_than_or_equal_to(0)" in reasons["6"]


def test_batch_without_required_columns_is_rejected_whole():
    prepared = prepare_batch(SPEC, pd.DataFrame({"user_id": [1], "event_timestamp": [clock.now.isoformat()]}), now=clock.now)
    assert prepared.accepted.empty
    assert "lacks column(s) ['current_session_messages'" in prepared.rejected["reason"].item()


def test_event_to_online_and_offline_through_dagster_runs(platform):
    first = platform.push("user_realtime_events", events([(1, 30, 3, 300, 0.5), (2, 20, 5, 500, 0.0)]))
    second = platform.push("user_realtime_events", events([(3, 10, 1, 10, 2.0), (4, 5, -1, 1, 1.0)]))
    assert platform.ingest_pending("user_realtime_events") == [first, second]
    vec = online(platform, [1, 2, 3, 4])
    assert vec.loc[1, "current_session_messages"] == 3 and vec.loc[2, "current_session_tokens"] == 500
    assert vec.loc[3, "last_active_minutes_ago"] == pytest.approx(2.0)
    assert vec.loc[4, "current_session_messages__status"] == "missing"
    table = platform.offline_table("user_realtime")
    assert sorted(table["user_id"]) == [1, 2, 3]

    event = platform.instance().get_latest_materialization_event(dg.AssetKey("user_realtime"))
    md = event.asset_materialization.metadata
    assert event.asset_materialization.partition == second
    assert md["batch_id"].value == second
    assert (md["rows_received"].value, md["rows_accepted"].value, md["rows_rejected"].value) == (2, 1, 1)
    assert 0 <= md["ingestion_lag_sec"].value < 600
    assert transport(platform).pending() == []
    dead = dead_rows(platform, second)
    assert dead["user_id"].tolist() == ["4"]
    assert dead["reason"].item() == "current_session_messages: failed greater_than_or_equal_to(0) (value -1)"


def test_out_of_order_events_never_make_online_values_older(platform):
    platform.push("user_realtime_events", events([(7, 10, 9, 900, 0.1)]))
    platform.push("user_realtime_events", events([(7, 300, 2, 200, 5.0)]))  # older, arrives later
    platform.ingest_pending("user_realtime_events")
    vec = online(platform, [7])
    assert vec.loc[7, "current_session_messages"] == 9
    assert vec.loc[7, "current_session_messages__event_timestamp"] == clock.now - pd.Timedelta(seconds=10)
    assert len(platform.offline_table("user_realtime")) == 2  # both events are history


def test_crash_before_ack_loses_nothing_and_duplicates_nothing(platform, monkeypatch):
    batch_id = platform.push("user_realtime_events", events([(11, 10, 4, 40, 0.2), (12, 10, 6, 60, 0.3)]))

    def crash(self, batch):
        raise RuntimeError("killed before acknowledging")

    kind = type(transport(platform))
    monkeypatch.setattr(kind, "ack", crash)
    with pytest.raises(fp.MaterializationError, match="killed before acknowledging"):
        platform.ingest_pending("user_realtime_events")
    monkeypatch.undo()
    landing = transport(platform)
    assert landing.pending() == [batch_id]  # still there: not lost
    assert platform.ingest_pending("user_realtime_events") == [batch_id]
    table = platform.offline_table("user_realtime")
    assert sorted(table["user_id"]) == [11, 12]  # written twice, stored once
    assert landing.pending() == []


def test_malformed_batch_file_does_not_block_the_next(embedded_settings):
    platform = fp.FeaturePlatform(embedded_settings)
    landing = LandingDirectory(platform.settings.home, "user_realtime_events")
    landing.incoming.mkdir(parents=True, exist_ok=True)
    (landing.incoming / "00000000000000000001-broken.parquet").write_bytes(b"not parquet at all")
    good = platform.push("user_realtime_events", events([(21, 5, 1, 10, 0.0)]))
    assert platform.ingest_pending("user_realtime_events") == ["00000000000000000001-broken", good]
    assert online(platform, [21]).loc[21, "current_session_messages"] == 1
    assert (landing.dead / "00000000000000000001-broken.parquet").exists()
    assert "cannot be read" in (landing.dead / "00000000000000000001-broken.reason.txt").read_text()


def test_jsonl_batches_are_accepted(embedded_settings):
    platform = fp.FeaturePlatform(embedded_settings)
    landing = LandingDirectory(platform.settings.home, "user_realtime_events")
    landing.incoming.mkdir(parents=True, exist_ok=True)
    events([(31, 5, 2, 20, 0.5)]).to_json(landing.incoming / "00000000000000000002-json.jsonl", orient="records", lines=True)
    platform.ingest_pending("user_realtime_events")
    assert online(platform, [31]).loc[31, "current_session_tokens"] == 20


def test_low_latency_path_writes_online_now_and_offline_when_its_log_is_drained(platform):
    result = platform.push("user_realtime_events", events([(41, 1, 8, 80, 0.0), (42, 1, -1, 0, 0.0)]), direct=True)
    assert (result.accepted, result.rejected, result.written_online) == (1, 1, 1)
    assert online(platform, [41]).loc[41, "current_session_messages"] == 8
    dead = dead_rows(platform, result.batch_id)
    assert dead["user_id"].tolist() == ["42"] and "greater_than_or_equal_to(0)" in dead["reason"].item()
    log = transport_for(platform.runtime, SPEC, direct_log=True)
    assert log.pending() == [result.batch_id]  # logged for the offline store before the online write
    assert platform.offline_table("user_realtime").empty
    assert platform.ingest_pending("user_realtime_events") == [f"direct-{result.batch_id}"]
    assert platform.offline_table("user_realtime")["user_id"].tolist() == [41]
    assert log.pending() == []
    assert platform.ingest_pending("user_realtime_events") == []
    assert platform.offline_table("user_realtime")["user_id"].tolist() == [41]


def test_sensor_drains_many_direct_pushes_in_one_run_and_a_crashed_drain_loses_nothing(embedded_settings, monkeypatch):
    platform = fp.FeaturePlatform(embedded_settings)
    defs = build_definitions(embedded_settings)
    sensor = defs.get_sensor_def("user_realtime_events_sensor")
    ids = [platform.push("user_realtime_events", events([(70 + i, 5, i, i, 0.0)]), direct=True).batch_id for i in range(5)]
    with dg.instance_for_test() as instance:
        def tick():
            return sensor(dg.build_sensor_context(instance=instance, resources=resources_for(embedded_settings)))

        result = tick()
        assert [(r.run_key, r.partition_key) for r in result.run_requests] == [(f"direct-{ids[-1]}",) * 2]
        instance.add_dynamic_partitions("user_realtime_events_batches", [f"direct-{ids[-1]}"])
        real_write = type(platform.runtime.offline).write_batch
        calls = []

        def crash_on_third(self, spec, batch_id, rows):
            calls.append(batch_id)
            if len(calls) == 3:
                raise RuntimeError("killed mid-drain")
            return real_write(self, spec, batch_id, rows)

        monkeypatch.setattr(type(platform.runtime.offline), "write_batch", crash_on_third)
        failed = dg.materialize(list(defs.assets), selection=[dg.AssetKey("user_realtime")],
                                partition_key=f"direct-{ids[-1]}", instance=instance,
                                resources=resources_for(embedded_settings), raise_on_error=False)
        assert not failed.success
        monkeypatch.undo()
        assert transport_for(platform.runtime, SPEC, direct_log=True).pending() == ids[2:]  # not lost
        again = tick()
        assert [r.run_key for r in again.run_requests] == [f"direct-{ids[-1]}#retry1"]
        done = dg.materialize(list(defs.assets), selection=[dg.AssetKey("user_realtime")],
                              partition_key=f"direct-{ids[-1]}", instance=instance,
                              resources=resources_for(embedded_settings))
        md = done.asset_materializations_for_node("user_realtime")[0].metadata
        assert md["rows_accepted"].value == 3
        assert isinstance(tick(), dg.SkipReason)
    table = platform.offline_table("user_realtime")
    assert sorted(table["user_id"]) == [70, 71, 72, 73, 74]  # each exactly once


def test_online_values_expire_after_the_one_hour_ttl(platform):
    platform.push("user_realtime_events", events([(51, 30, 1, 1, 0.0)]), direct=True)
    later = (clock.now + timedelta(hours=1, minutes=1)).to_pydatetime()
    vec = platform.online_features(FEATURES, [{"user_id": 51}], with_metadata=True, now=later)
    assert vec["current_session_messages__status"].item() == "expired"


def test_sensor_requests_one_run_per_batch_and_retries_unacknowledged_ones(embedded_settings, monkeypatch):
    platform = fp.FeaturePlatform(embedded_settings)
    defs = build_definitions(embedded_settings)
    sensor = defs.get_sensor_def("user_realtime_events_sensor")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources_for(embedded_settings))
        assert isinstance(sensor(context), dg.SkipReason)
        a = platform.push("user_realtime_events", events([(1, 5, 1, 1, 0.0)]))
        b = platform.push("user_realtime_events", events([(2, 5, 1, 1, 0.0)]))
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources_for(embedded_settings)))
        assert [(r.run_key, r.partition_key) for r in result.run_requests] == [(a, a), (b, b)]
        assert result.dynamic_partitions_requests[0].partition_keys == [a, b]
        instance.add_dynamic_partitions("user_realtime_events_batches", [a, b])
        # A run for batch a failed (nothing acknowledged): the next tick asks again under a new key.
        monkeypatch.setattr(LandingDirectory, "ack", lambda self, batch: 1 / 0)
        failed = dg.materialize(list(defs.assets), selection=[dg.AssetKey("user_realtime")], partition_key=a,
                                instance=instance, resources=resources_for(embedded_settings), raise_on_error=False)
        assert not failed.success
        again = sensor(dg.build_sensor_context(instance=instance, resources=resources_for(embedded_settings)))
        assert [r.run_key for r in again.run_requests] == [f"{a}#retry1", b]


def test_push_view_in_the_asset_graph(embedded_settings):
    defs = build_definitions(embedded_settings)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("user_realtime")).parent_keys == {dg.AssetKey("user_realtime_events")}
    spec = next(s for s in defs.resolve_all_asset_specs() if s.key == dg.AssetKey("user_realtime"))
    assert spec.freshness_policy.fail_window.to_timedelta() == timedelta(minutes=5)
    assert spec.tags["freshness_sla"] == "realtime"


def test_unknown_push_source(embedded_settings):
    with pytest.raises(fp.UnknownFeatureViewError, match="unknown push source 'nope'"):
        fp.FeaturePlatform(embedded_settings).push("nope", events([(1, 1, 1, 1, 1.0)]))


@pytest.mark.services
def test_redis_stream_transport_end_to_end(services_settings):
    """Producers may XADD to the stream directly; a malformed entry is dead-lettered, the next still lands."""
    platform = fp.FeaturePlatform(services_settings)
    stream = transport(platform)
    assert isinstance(stream, RedisStreamTransport)
    bad = stream.client.xadd(stream.stream, {"rows": "{not json"}).decode()
    good = stream.client.xadd(stream.stream, {"rows": events([(61, 3, 5, 50, 0.0)]).to_json(orient="records")}).decode()
    assert platform.ingest_pending("user_realtime_events") == [bad, good]
    assert online(platform, [61]).loc[61, "current_session_messages"] == 5
    assert stream.pending() == []
    assert stream.client.xpending(stream.stream, "feature_platform")["pending"] == 0
    (dead,) = stream.dead_letters()
    assert dead["batch_id"] == bad and "cannot be read" in dead["reason"]


def test_online_dict_output_has_the_same_values_as_the_frame(platform):
    platform.push("user_realtime_events", events([(81, 5, 3, 30, 1.5), (82, 5, 4, 40, 0.0)]), direct=True)
    rows = [{"user_id": u} for u in (81, 82, 83)]
    frame = platform.online_features(FEATURES, rows, with_metadata=True)
    lists = platform.online_features(FEATURES, rows, with_metadata=True, output="dict")
    assert set(lists) == set(frame.columns)
    for f in SPEC.feature_names:
        assert lists[f] == [None if pd.isna(v) else v for v in frame[f].astype(object)]
        assert lists[f"{f}__status"] == frame[f"{f}__status"].tolist() == ["present", "present", "missing"]
        assert lists[f"{f}__event_timestamp"][:2] == [t.value for t in frame[f"{f}__event_timestamp"][:2]]
    assert lists["current_session_tokens"] == [30, 40, None]
    with pytest.raises(ValueError, match="output must be"):
        platform.online_features(FEATURES, rows, output="arrow")


def test_a_direct_push_lands_offline_exactly_what_it_serves_online(platform):
    """Issue 19 item 2: the direct path and the drain of its log judge with one rule set, so no row reaches
    online without reaching offline, with the same values. Typed columns (the former row-by-row path):
    a float32 overflow, a sub-microsecond time, a tiny float, a key beyond 2**53."""
    now = pd.Timestamp(clock.now) + pd.Timedelta(nanoseconds=123_456_789)
    batch = pd.DataFrame({
        "user_id": np.array([91, 92, 93, 2**60 + 1], dtype="int64"),
        "event_timestamp": pd.Series([now] * 4),
        "current_session_messages": np.array([1, 2, 3, 4], dtype="int64"),
        "current_session_tokens": np.array([10, 20, 30, 40], dtype="int64"),
        "last_active_minutes_ago": np.array([1e39, 1.2345678e-12, 3.4e38, 0.5]),  # 1e39: beyond float32
    })
    result = platform.push("user_realtime_events", batch, direct=True)
    assert (result.accepted, result.rejected) == (3, 1)
    assert "last_active_minutes_ago: failed finite (value inf)" in dead_rows(platform, result.batch_id)["reason"].item()
    users = [91, 92, 93, 2**60 + 1]
    served = online(platform, users)
    assert served.loc[91, "last_active_minutes_ago__status"] == "missing"  # never served: it can never land offline

    drained = drain_direct_log(platform.runtime, SPEC)
    assert (drained.accepted, drained.rejected) == (3, 0)  # the drain accepts exactly what the direct path did
    table = platform.offline_table("user_realtime").set_index("user_id")
    assert sorted(table.index) == users[1:]
    for user in users[1:]:
        assert table.loc[user, "event_timestamp"] == now.floor("us")  # the stores' precision, on both sides
        for f in SPEC.feature_names:
            assert served.loc[user, f] == table.loc[user, f], (user, f)
    assert table.loc[92, "last_active_minutes_ago"] == np.float32(1.2345678e-12)  # not rounded to 0 on the way


def test_the_queued_path_keeps_exact_values_through_its_transport(platform):
    """Issue 19 item 2: what the sensor path lands equals what the direct path lands: a key column with a
    null keeps 2**60 + 1 (not rounded through a float), a tiny float keeps its value."""
    now = clock.now.isoformat()
    batch = pd.DataFrame({
        "user_id": pd.Series([2**60 + 3, None], dtype=object),
        "event_timestamp": [now, now],
        "current_session_messages": [1, 2],
        "current_session_tokens": [10, 20],
        "last_active_minutes_ago": [1.2345678e-12, 0.5],
    })
    batch_id = platform.push("user_realtime_events", batch)
    result = ingest_batch(platform.runtime, SPEC, batch_id)
    assert (result.accepted, result.rejected) == (1, 1)
    table = platform.offline_table("user_realtime")
    assert table["user_id"].tolist() == [2**60 + 3]
    assert table["last_active_minutes_ago"].tolist() == [np.float32(1.2345678e-12)]
    assert online(platform, [2**60 + 3]).loc[2**60 + 3, "current_session_messages"] == 1


def test_a_retried_push_is_stored_once_offline_and_the_last_write_wins(platform):
    """Issue 19 item 5: delivery is at least once, so the offline table is idempotent on (entity, event time)
    across batches and paths, on both profiles: a retry stores nothing twice, and the last write of an
    event wins, as PostgreSQL's upsert does (the replay of an older batch included)."""
    rows = [(101, 40, 1, 10, 0.5), (102, 30, 2, 20, 1.5), (103, 20, 3, 30, 2.5), (104, 10, 4, 40, 3.5)]
    first = platform.push("user_realtime_events", events(rows))
    platform.ingest_pending("user_realtime_events")
    platform.push("user_realtime_events", events(rows))  # the producer's retry, as a new batch
    platform.push("user_realtime_events", events(rows), direct=True)  # and once more on the low-latency path
    platform.ingest_pending("user_realtime_events")
    columns = ["user_id", "event_timestamp", *SPEC.feature_names]
    table = platform.offline_table("user_realtime")
    assert len(table) == 4 and sorted(table["user_id"]) == [101, 102, 103, 104]

    corrected = [(101, 40, 7, 70, 0.25)]  # a later write of the same event replaces it
    platform.push("user_realtime_events", events(corrected), direct=True)
    platform.ingest_pending("user_realtime_events")
    table = platform.offline_table("user_realtime").set_index("user_id")
    assert len(table) == 4 and table.loc[101, "current_session_messages"] == 7
    # Replaying the first batch (a crash before its acknowledgement) is a write too: its values win again.
    ingest_batch(platform.runtime, SPEC, first)
    table = platform.offline_table("user_realtime")[columns].sort_values("user_id").reset_index(drop=True)
    expected = events(rows).astype({"user_id": "int64", "last_active_minutes_ago": "float32"})
    expected["event_timestamp"] = pd.to_datetime(expected["event_timestamp"], utc=True)
    pd.testing.assert_frame_equal(table, expected[columns], check_dtype=False)

    # Training sets read the table through DuckDB, Feast and Spark read the view's files: one row an event.
    with duckdb.connect() as con:
        platform.runtime.offline.register_duckdb(con, SPEC, "pushed", clock.now - pd.Timedelta(hours=1), clock.now)
        assert con.execute("SELECT count(*), count(DISTINCT user_id) FROM pushed").fetchone() == (4, 4)
    if platform.settings.profile == "embedded":
        assert len(pd.read_parquet(platform.settings.offline_dir / "user_realtime")) == 4


def _rows(users, stamp: pd.Timestamp, messages: int) -> pd.DataFrame:
    n = len(users)
    return pd.DataFrame({"user_id": np.array(users, dtype="int64"), "current_session_messages": np.full(n, messages),
                         "current_session_tokens": np.full(n, 10 * messages),
                         "last_active_minutes_ago": np.full(n, 0.5, dtype="float32"),
                         "event_timestamp": pd.Series([stamp] * n), "created_timestamp": pd.Series([stamp] * n)})


def test_per_batch_files_of_earlier_releases_are_folded_into_the_day_files(embedded_settings):
    """A home written by an earlier release holds one Parquet file per pushed batch, duplicates included;
    the next write folds them into the day files, oldest batch first, each event once."""
    store = fp.FeaturePlatform(embedded_settings).runtime.offline
    stamp = clock.now - pd.Timedelta(minutes=1)
    store._write(SPEC, "batch-0001", _rows([1, 2], stamp, 1))  # as the per-batch layout wrote them
    store._write(SPEC, "batch-0002", _rows([2, 3], stamp, 2))  # user 2's event again, a later value
    store.write_batch(SPEC, "0003", _rows([4], stamp, 3))
    directory = embedded_settings.offline_dir / SPEC.name
    assert sorted(p.name for p in directory.glob("*.parquet")) == [f"events-{stamp.date()}.parquet"]
    table = store.read(SPEC).set_index("user_id")
    assert table["current_session_messages"].to_dict() == {1: 1, 2: 2, 3: 2, 4: 3}


def _upsert_many(home: str, worker: int, stamp: pd.Timestamp) -> None:
    from feature_platform.stores.offline_parquet import ParquetOfflineStore

    store = ParquetOfflineStore(home)
    for i in range(15):
        store.write_batch(SPEC, f"{worker}-{i}", _rows([worker * 100 + i], stamp, i))


def test_concurrent_writers_of_a_day_file_lose_no_rows(tmp_path):
    """Each batch rewrites its day's file: writers in several processes queue on the view's lock, or one's
    rewrite would drop the rows another just wrote."""
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_upsert_many, args=(str(tmp_path), w, clock.now)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 4
    from feature_platform.stores.offline_parquet import ParquetOfflineStore

    users = ParquetOfflineStore(tmp_path).read(SPEC)["user_id"]
    assert sorted(users) == [w * 100 + i for w in range(4) for i in range(15)]
