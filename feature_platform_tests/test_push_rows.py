"""The low-latency path without pandas (`push_rows.prepare_rows`, `codec.encode_list`, one Redis script call)
equals the pandas path it skips: `prepare_batch`'s accepted frame, `rows_json`'s log entry, `encode_values`'
bytes and `RedisFeatures.write`'s hashes; any batch it does not judge is handed back (None)."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import redis
from chat_activity.user_realtime import SPEC
from hypothesis import given, settings
from hypothesis import strategies as st

import feature_platform as fp
from feature_platform.feast_format import codec as fmt
from feature_platform.push import prepare_batch
from feature_platform.push_rows import prepare_rows
from feature_platform.runtime import Runtime
from feature_platform.spec import Entity, FeatureViewSpec, Field
from feature_platform.stores.landing import records_frame, rows_json
from feature_platform_tests.helpers import make_embedded_settings

NOW = pd.Timestamp("2026-06-01T12:00:00.123456Z")

WIDE = FeatureViewSpec(
    name="wide", entity=Entity("thing", "thing_id", "string"),
    fields=(Field("n", "int64", le=100), Field("x", "float64", ge=-1.5), Field("f", "float32"),
            Field("flag", "bool"), Field("tier", "string", isin=("a", "b")), Field("maybe", "float64", nullable=True)),
    ttl=timedelta(hours=1), owner="t", freshness_sla=timedelta(hours=1), version=1, description="", push_source="wide_events",
)

BIG = 2**63
ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 200), st.sampled_from([BIG, -BIG - 1, 2**53 + 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([3.4e38, 3.5e38, 1e-46, 0.1, -1.5, 2.0]),
    st.sampled_from(["a", "b", "c", "1", "True", "2.5", ""]), st.just(np.int64(7)), st.just(np.float32(0.1)),
)
STAMP = st.one_of(
    st.sampled_from([-600, -1, 0, 299, 301]).map(lambda s: NOW + pd.Timedelta(seconds=s, microseconds=7, nanoseconds=3)),
    st.sampled_from([0, 60]).map(lambda s: (NOW + pd.Timedelta(seconds=s)).to_pydatetime().astimezone(timezone(timedelta(hours=2)))),
    st.just("2026-06-01T11:00:00.5+01:00"), st.just("2026-06-01T11:00:00"), st.just(NOW.tz_convert(None)),
    st.none(), st.just("soon"),
)


def wide_row(draw_key, n, x, f, flag, tier, maybe, stamp) -> dict:
    return {"thing_id": draw_key, "event_timestamp": stamp, "n": n, "x": x, "f": f, "flag": flag, "tier": tier,
            "maybe": maybe}


plain_wide = st.builds(wide_row, st.sampled_from(["k1", "k2"]), st.integers(-5, 100), st.floats(-1.5, 1e6),
                       st.floats(-1024.0, 2.0**100, width=32), st.booleans(), st.sampled_from(["a", "b"]),
                       st.floats(-2, 2), st.sampled_from([NOW, NOW - pd.Timedelta(seconds=1)]))
odd_wide = st.builds(wide_row, st.one_of(st.sampled_from(["k1", "k2"]), ANY), ANY, ANY, ANY, ANY, ANY, ANY, STAMP)
realtime = st.builds(lambda u, m, t, a, s: {"user_id": u, "event_timestamp": s, "current_session_messages": m,
                                            "current_session_tokens": t, "last_active_minutes_ago": a},
                     st.one_of(st.integers(1, 3), ANY), st.one_of(st.integers(-1, 50), ANY),
                     st.one_of(st.integers(0, 10**6), ANY), st.one_of(st.floats(-1, 100, width=32), ANY),
                     st.one_of(st.just(NOW), STAMP))


def check_equal(spec, rows: list[dict]) -> bool:
    """prepare_rows vs prepare_batch on `rows` as a list of dicts and as the frame a producer builds; True when
    the fast path judged them."""
    frame = records_frame(rows)
    slow = prepare_batch(spec, frame, now=NOW)
    judged = False
    for given_as in (rows, frame, typed_frame(frame)):
        fast = prepare_rows(spec, given_as, now=NOW)
        if given_as is not rows and given_as is not frame:
            slow = prepare_batch(spec, given_as, now=NOW)
        if fast is None:
            continue
        judged = True
        assert slow.rejected.empty, slow.rejected
        pd.testing.assert_frame_equal(fast.frame(), slow.accepted)
        assert (fast.received, fast.duplicates) == (len(frame), slow.duplicates)
        assert fast.log_json() == rows_json(slow.accepted)
        for f in spec.fields:
            assert fmt.encode_list(fast.values[f.name], f.dtype) == fmt.encode_values(slow.accepted[f.name], f.dtype)
        assert [fmt.encode_timestamp_ns(t) for t in fast.stamps] == fmt.encode_timestamps(slow.accepted["event_timestamp"])
    return judged


def typed_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with pandas' own inference per column (what `pd.DataFrame(rows)` gives a producer)."""
    return pd.DataFrame({c: frame[c].tolist() for c in frame.columns})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(odd_wide, plain_wide), min_size=1, max_size=6))
def test_fast_rows_equal_prepare_batch_on_any_values(rows):
    check_equal(WIDE, rows)


@settings(max_examples=150, deadline=None)
@given(st.lists(realtime, min_size=1, max_size=6))
def test_fast_rows_equal_prepare_batch_on_the_realtime_view(rows):
    check_equal(SPEC, rows)


@settings(max_examples=60, deadline=None)
@given(st.lists(plain_wide, min_size=1, max_size=8))
def test_plain_rows_are_judged_without_pandas(rows):
    rows = [r for r in rows if r["n"] >= 0] or rows[:0]
    if rows:
        assert check_equal(WIDE, rows)


def test_what_it_hands_back():
    good = {"user_id": 1, "event_timestamp": NOW, "current_session_messages": 1, "current_session_tokens": 2,
            "last_active_minutes_ago": 0.5}
    assert prepare_rows(SPEC, [good], now=NOW) is not None
    assert prepare_rows(SPEC, [], now=NOW) is None
    assert prepare_rows(SPEC, [{**good, "current_session_messages": -1}], now=NOW) is None  # rejected: the slow path says why
    assert prepare_rows(SPEC, [{k: v for k, v in good.items() if k != "current_session_tokens"}], now=NOW) is None
    assert prepare_rows(SPEC, [{**good, 1: "x"}], now=NOW) is None  # a non-text column name
    assert prepare_rows(SPEC, [{**good, "event_timestamp": NOW.tz_convert(None)}], now=NOW) is None  # naive
    assert prepare_rows(SPEC, [{**good, "user_id": True}], now=NOW) is None
    assert prepare_rows(SPEC, [{**good, "last_active_minutes_ago": math.nan}], now=NOW) is None
    assert prepare_rows(SPEC, [good] * 1001, now=NOW) is None  # beyond SMALL_BATCH


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, width=32), min_size=1, max_size=20), st.sampled_from(["float32", "float64"]))
def test_encode_list_equals_encode_values(values, dtype):
    assert fmt.encode_list(values, dtype) == fmt.encode_values(pd.Series(values, dtype=dtype), dtype)


@pytest.mark.services
def test_the_one_round_trip_writes_the_bytes_of_the_batched_writer(services_settings):
    """The direct push's one script call (XADD, newest-wins write, watermark) leaves Redis holding exactly what
    `OnlineStore.write` of the accepted frame writes, newest-wins included, and logs the frame's `rows_json`; if the
    log append fails, nothing is written online."""
    platform = fp.FeaturePlatform(services_settings)
    client = redis.Redis(host=services_settings.redis_host, port=services_settings.redis_port,
                         db=services_settings.redis_db)
    now = pd.Timestamp(datetime.now(timezone.utc))
    rows = [{"user_id": u, "event_timestamp": now - pd.Timedelta(seconds=s), "current_session_messages": m,
             "current_session_tokens": 7 * m, "last_active_minutes_ago": 0.1 * m} for u, s, m in
            [(1, 5, 1), (2, 5, 2), (1, 1, 3), (1, 9, 4)]]  # user 1's last event is older: newest-wins keeps (1, 1, 3)

    def state() -> dict:
        keys = sorted(k for k in client.keys("*") if not k.startswith(b"feature_platform:"))
        return {k: client.hgetall(k) for k in keys} | {b"wm": client.get("feature_platform:watermark:user_realtime")}

    client.script_flush()  # the call sends its script whole on NOSCRIPT
    results = [platform.push("user_realtime_events", [r], direct=True) for r in rows]
    assert [r.written_online for r in results] == [1, 1, 1, 0]
    fast = state()
    stream = client.xrange("feature_platform:push:user_realtime_events.direct")
    logged = [fields[b"rows"].decode() for _, fields in stream]
    assert [e.decode() for e, _ in stream] == [r.batch_id for r in results]

    for key in client.keys("*"):
        client.delete(key)
    platform = fp.FeaturePlatform(services_settings)
    frames = []
    for r in rows:
        frame = prepare_batch(SPEC, records_frame([r]))
        assert frame.rejected.empty
        frames.append(frame.accepted)
        platform.runtime.writable_online().write(SPEC, frame.accepted)
    assert state() == fast
    # The same rows, values and times as the frames (created_timestamp is each call's own clock).
    for entry, frame in zip(logged, frames):
        assert entry.split('"created_timestamp"')[0] == rows_json(frame).split('"created_timestamp"')[0]

    for key in client.keys("*"):
        client.delete(key)
    client.set("feature_platform:push:user_realtime_events.direct", "not a stream")  # the XADD fails: WRONGTYPE
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        platform.push("user_realtime_events", rows[:1], direct=True)
    assert state() == {b"wm": None}  # nothing online, no watermark


def sqlite_rows(path) -> list:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT entity_key, feature_name, value, value_text, vector_value, event_ts, created_ts "
                            "FROM feature_platform_user_realtime ORDER BY entity_key, feature_name").fetchall()


def test_the_one_transaction_writes_the_rows_of_the_batched_writer(tmp_path):
    """Embedded: the direct push's transaction (log append, newest-wins upsert, watermark) leaves Feast's SQLite table
    exactly as `OnlineStore.write` of the accepted frame does (itself byte-identical to Feast: test_sqlite_format)."""
    now = pd.Timestamp(datetime.now(timezone.utc))
    batches = [[{"user_id": u, "event_timestamp": now - pd.Timedelta(seconds=s, microseconds=u), "current_session_messages": m,
                 "current_session_tokens": 7 * m, "last_active_minutes_ago": 0.1 * m} for u, s, m in batch]
               for batch in ([(1, 5, 1), (2, 5, 2)], [(1, 1, 3), (3, 2, 5)], [(1, 9, 4)])]
    fast_rt = Runtime(make_embedded_settings(tmp_path / "fast"))
    log = fast_rt.backends.direct_log("user_realtime_events")
    written = []
    for batch in batches:
        rows = prepare_rows(SPEC, batch, now=now)
        assert rows is not None
        entry, n = fast_rt.writable_online().write_logged(SPEC, rows, log)
        written.append(n)
        assert json.loads(log._rows(entry)) == json.loads(rows_json(rows.frame()))
    assert written == [2, 2, 0]  # the last event of user 1 is older than the stored one
    slow_rt = Runtime(make_embedded_settings(tmp_path / "slow"))
    for batch in batches:
        slow_rt.writable_online().write(SPEC, prepare_batch(SPEC, records_frame(batch), now=now).accepted)
    assert sqlite_rows(fast_rt.settings.feast_dir / "online.db") == sqlite_rows(slow_rt.settings.feast_dir / "online.db")
    assert fast_rt.online.newest_timestamp(SPEC) == slow_rt.online.newest_timestamp(SPEC)
    assert len(log.pending()) == 3


def test_the_log_append_and_the_online_write_land_together_or_not_at_all(tmp_path, monkeypatch):
    """Embedded: a failure anywhere in the direct push's transaction leaves neither the log entry nor the values."""
    rt = Runtime(make_embedded_settings(tmp_path))
    log = rt.backends.direct_log("user_realtime_events")
    now = pd.Timestamp(datetime.now(timezone.utc))
    rows = prepare_rows(SPEC, [{"user_id": 1, "event_timestamp": now, "current_session_messages": 1,
                                "current_session_tokens": 2, "last_active_minutes_ago": 0.5}], now=now)
    online = rt.writable_online()
    monkeypatch.setattr(type(online.watermarks), "bump_sql", lambda self, view, ns: ("INSERT INTO no_such_table VALUES (1)", ()))
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        online.write_logged(SPEC, rows, log)
    assert log.pending() == [] and sqlite_rows(rt.settings.feast_dir / "online.db") == []
    monkeypatch.undo()
    online.write_logged(SPEC, rows, log)
    assert len(log.pending()) == 1 and len(sqlite_rows(rt.settings.feast_dir / "online.db")) == 3
