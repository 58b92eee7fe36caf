"""Fuzzed push payloads (issue 9 item 6): generated batches of good and bad rows, as producers send them
(object columns mixing ints, text, floats, bools, None, NaN, inf, huge values, naive, far-future and
out-of-range times). Accepted rows must equal exactly the valid rows after dedupe (last repeat of
(user, time) wins); every rejected row has a reason naming only columns that were bad; nothing raises
but the documented errors. Through `prepare_batch`, `push(direct=True)` and the sensor path."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import feature_platform as fp
from feature_platform.ingest import transport_for
from feature_platform.push import prepare_batch, prepare_small_batch
from feature_platform.specs.user_realtime import SPEC
from feature_platform_tests.conftest import make_embedded_settings

NOW = pd.Timestamp("2026-06-01T12:00:00Z")
COLUMNS = ["user_id", "event_timestamp", "current_session_messages", "current_session_tokens",
           "last_active_minutes_ago"]
INT_FEATURES = ("current_session_messages", "current_session_tokens")
HUGE = "9" * 5000

# A good cell is (value sent, value expected once typed); a bad cell is the value alone.
big_ints = st.integers(-(2**63), 2**63 - 1)
good_key = st.one_of(st.integers(1, 4), big_ints).flatmap(
    lambda k: st.sampled_from([(k, k), (str(k), k)] + ([(float(k), k)] if abs(k) < 2**53 else [])))
good_time = st.sampled_from([0, 60, 3600, 86_400 * 30]).flatmap(lambda ago: st.sampled_from([
    ((NOW - pd.Timedelta(seconds=ago)).isoformat().replace("+00:00", "Z"), NOW - pd.Timedelta(seconds=ago)),
    ((NOW - pd.Timedelta(seconds=ago)).tz_convert("Asia/Kolkata").isoformat(), NOW - pd.Timedelta(seconds=ago)),
    (NOW - pd.Timedelta(seconds=ago), NOW - pd.Timedelta(seconds=ago)),
]))
good_count = st.integers(0, 2**63 - 1).flatmap(
    lambda n: st.sampled_from([(n, n), (str(n), n)] + ([(float(n), n)] if n < 2**53 else [])))
good_minutes = st.one_of(st.floats(0, 1e30, allow_nan=False, allow_infinity=False), st.integers(0, 10**6)).map(
    lambda v: (v, np.float32(v)))

bad_key = st.sampled_from([None, float("nan"), "abc", "", 1.5, True, 2**63, -(2**63) - 1, HUGE, float("inf"), [1]])
FUTURE = (NOW + pd.Timedelta(days=1)).isoformat()
bad_time = st.sampled_from([None, "garbage", "2026-06-01T11:00:00", FUTURE,
                            "0001-01-01T00:00:00Z", "3000-01-01T00:00:00Z", 12345, HUGE, pd.Timestamp("2026-06-01")])
bad_count = st.sampled_from([-1, 1.5, "abc", None, float("nan"), float("inf"), True, 2**63, HUGE, "nan"])
bad_minutes = st.sampled_from([-0.5, "abc", None, float("nan"), float("inf"), float("-inf"), True, 1e39, HUGE])

CELLS = {"user_id": (good_key, bad_key), "event_timestamp": (good_time, bad_time),
         "current_session_messages": (good_count, bad_count), "current_session_tokens": (good_count, bad_count),
         "last_active_minutes_ago": (good_minutes, bad_minutes)}


@st.composite
def rows(draw):
    """A row as {column: value}, its expected typed values (None when bad), and the set of bad columns."""
    sent, typed, bad = {}, {}, set()
    for column, (good, wrong) in CELLS.items():
        if draw(st.integers(0, 5)) == 0:
            sent[column], typed[column] = draw(wrong), None
            bad.add(column)
        else:
            sent[column], typed[column] = draw(good)
    return sent, typed, bad


batches = st.lists(rows(), min_size=0, max_size=10)


def as_frame(items, extra: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series([r[0][c] for r in items], dtype=object) for c in COLUMNS})
    return frame.assign(unrelated="ignored", note=range(len(frame))) if extra else frame


def expected_accepted(items) -> list[tuple]:
    last: dict[tuple, int] = {}
    for i, (_, typed, bad) in enumerate(items):
        if not bad:
            last[(typed["user_id"], typed["event_timestamp"])] = i
    return [tuple(items[i][1][c] for c in COLUMNS) for i in sorted(last.values())]


def accepted_tuples(frame: pd.DataFrame) -> list[tuple]:
    return [(int(r.user_id), pd.Timestamp(r.event_timestamp), int(r.current_session_messages),
             int(r.current_session_tokens), np.float32(r.last_active_minutes_ago)) for r in frame.itertuples()]


def check_prepared(prepared, items) -> None:
    assert accepted_tuples(prepared.accepted) == expected_accepted(items)
    assert str(prepared.accepted["user_id"].dtype) == "int64"
    assert str(prepared.accepted["current_session_messages"].dtype) == "int64"
    assert str(prepared.accepted["last_active_minutes_ago"].dtype) == "float32"
    bad_items = [it for it in items if it[2]]
    assert len(prepared.rejected) == len(bad_items)
    for reason, (_, _, bad) in zip(prepared.rejected["reason"], bad_items):
        named = {part.split(":")[0] for part in reason.split("; ")}
        assert named and named <= bad, (reason, bad)
        assert len(reason) < 2000  # a 5000-digit value is not pasted into the reason
    good = [it for it in items if not it[2]]
    assert prepared.duplicates == len(good) - len(expected_accepted(items))


@settings(max_examples=100, deadline=None)
@given(batches, st.booleans())
def test_prepare_batch_accepts_exactly_the_valid_rows(items, extra):
    check_prepared(prepare_batch(SPEC, as_frame(items, extra), now=NOW), items)


@settings(max_examples=30, deadline=None)
@given(batches, st.sampled_from(COLUMNS))
def test_a_batch_missing_a_column_is_rejected_whole(items, missing):
    prepared = prepare_batch(SPEC, as_frame(items).drop(columns=missing), now=NOW)
    assert prepared.accepted.empty and len(prepared.rejected) == len(items)
    assert all(f"lacks column(s) ['{missing}']" in r for r in prepared.rejected["reason"])


def test_typed_batches_out_of_range_fall_back_and_are_rejected():
    typed = pd.DataFrame({
        "user_id": np.array([2**63 + 5, 1], dtype="uint64"),
        "event_timestamp": pd.Series([NOW, NOW]),
        "current_session_messages": np.array([1, 2], dtype="uint64"),
        "current_session_tokens": np.array([1, 2], dtype="int64"),
        "last_active_minutes_ago": np.array([0.5, 1e39]),  # float32 overflow: infinite
    })
    assert prepare_small_batch(SPEC, typed, now=NOW) is None  # uint64 beyond int64: not judged row by row
    prepared = prepare_batch(SPEC, typed, now=NOW)
    assert prepared.accepted.empty
    assert prepared.rejected["reason"].tolist() == ["user_id: outside the int64 range",
                                                    "last_active_minutes_ago: failed finite (value inf)"]
    ancient = typed.iloc[1:].assign(
        user_id=np.array([1]), current_session_messages=np.array([1]), last_active_minutes_ago=[0.5],
        event_timestamp=pd.Series([pd.Timestamp("0001-01-01", tz="UTC")], dtype="datetime64[s, UTC]").array)
    assert prepare_small_batch(SPEC, ancient, now=NOW) is None
    assert "outside 1677-09-21..2262-04-11" in prepare_batch(SPEC, ancient, now=NOW).rejected["reason"].item()


def test_repeated_column_names_are_a_clear_error():
    frame = pd.DataFrame([[1, NOW.isoformat(), 1, 2, 0.5, 3]], columns=[*COLUMNS, "user_id"])
    with pytest.raises(fp.InvalidBatchError, match=r"view 'user_realtime' has repeated column\(s\) \['user_id'\]"):
        prepare_batch(SPEC, frame, now=NOW)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return fp.FeaturePlatform(make_embedded_settings(tmp_path_factory.mktemp("fuzz_push")))


def fresh_keys(items, base: int):
    """The items with good keys moved to a range of their own (the online store outlives an example)."""
    out = []
    for sent, typed, bad in items:
        if "user_id" not in bad:
            k = base + abs(hash(typed["user_id"])) % 1000
            sent, typed = {**sent, "user_id": k}, {**typed, "user_id": k}
        out.append((sent, typed, bad))
    return out


def recent(items):
    """Times relative to the real clock (push() judges 'future' against it)."""
    shift = pd.Timestamp(datetime.now(timezone.utc)).floor("s") - NOW
    out = []
    for sent, typed, bad in items:
        if "event_timestamp" not in bad:
            t = typed["event_timestamp"] + shift
            sent, typed = {**sent, "event_timestamp": t.isoformat()}, {**typed, "event_timestamp": t}
        elif sent["event_timestamp"] == FUTURE:  # still a day ahead of the real clock
            sent = {**sent, "event_timestamp": (NOW + shift + pd.Timedelta(days=1)).isoformat()}
        out.append((sent, typed, bad))
    return out


EXAMPLE = iter(range(10**6))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches)
def test_direct_push_lands_exactly_the_valid_rows(platform, items):
    items = recent(fresh_keys(items, 10_000 * (next(EXAMPLE) + 1)))
    result = platform.push("user_realtime_events", as_frame(items, extra=True), direct=True)
    want = expected_accepted(items)
    assert (result.received, result.accepted, result.rejected) == (len(items), len(want), sum(1 for i in items if i[2]))
    log = transport_for(platform.runtime, SPEC, direct_log=True)
    if want:
        assert accepted_tuples(log.read(result.batch_id)) == want
        newest = {}
        for w in want:
            if w[0] not in newest or w[1] >= newest[w[0]][1]:
                newest[w[0]] = w
        at = max(w[1] for w in want)
        live = [w for w in newest.values() if at - w[1] < pd.Timedelta(minutes=50)]  # inside the 1 h TTL
        online = platform.online_features([f"user_realtime:{f}" for f in SPEC.feature_names],
                                          [{"user_id": w[0]} for w in live], now=at.to_pydatetime())
        for row in online.itertuples():
            w = newest[row.user_id]
            assert (row.current_session_messages, row.current_session_tokens) == (w[2], w[3])
            assert np.float32(row.last_active_minutes_ago) == w[4]
    if result.rejected:
        dead = pd.read_parquet(transport_for(platform.runtime, SPEC).dead / f"{result.batch_id}.parquet")
        assert len(dead) == result.rejected and dead["reason"].str.len().gt(0).all()
        assert dead["unrelated"].eq("ignored").all()  # the rows as sent, extra columns included


def test_sensor_path_lands_the_same_rows_as_the_direct_path(platform):
    now = pd.Timestamp(datetime.now(timezone.utc)).floor("s")
    batch = pd.DataFrame({
        "user_id": pd.Series([2**60 + 1, "2", None, 3.0, True, 2**64, 5, 5], dtype=object),
        "event_timestamp": pd.Series([now.isoformat(), now - pd.Timedelta(minutes=1), now.isoformat(), now.isoformat(),
                                      now.isoformat(), now.isoformat(), "2026-01-01T00:00:00", now.isoformat()],
                                     dtype=object),
        "current_session_messages": pd.Series([1, "2", 3, 2**62, 5, 6, 7, 8], dtype=object),
        "current_session_tokens": pd.Series([10, 20, 30, 40, 50, 60, 70, [1]], dtype=object),
        "last_active_minutes_ago": pd.Series([0.5, "1.25", 2, 3, 4, 5, 6, 7], dtype=object),
        0: "a non-text column name",
    })
    direct = prepare_batch(SPEC, batch.set_axis([str(c) for c in batch.columns], axis=1), now=now)
    assert accepted_tuples(direct.accepted) == [
        (2**60 + 1, now, 1, 10, np.float32(0.5)), (2, now - pd.Timedelta(minutes=1), 2, 20, np.float32(1.25)),
        (3, now, 2**62, 40, np.float32(3))]
    batch_id = platform.push("user_realtime_events", batch)
    assert batch_id in platform.ingest_pending("user_realtime_events")  # (and the direct log of the test above)
    offline = platform.offline_table("user_realtime")
    landed = offline[offline["user_id"].isin([2**60 + 1, 2, 3])].sort_values("user_id", key=lambda s: s.map(str))
    assert sorted(accepted_tuples(landed)) == sorted(accepted_tuples(direct.accepted))
    dead = pd.read_parquet(transport_for(platform.runtime, SPEC).dead / f"{batch_id}.parquet")
    assert dead["reason"].tolist() == direct.rejected["reason"].tolist()
    with pytest.raises(fp.InvalidBatchError, match="repeated column"):
        platform.push("user_realtime_events", batch.set_axis([*COLUMNS, "user_id"], axis=1))
