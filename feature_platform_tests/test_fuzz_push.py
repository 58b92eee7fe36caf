"""Fuzzed push payloads (issue 9 item 6): generated batches of good and bad rows, as producers send them
(object columns mixing ints, text, floats, bools, None, NaN, inf, huge values, naive, far-future and
out-of-range times). Accepted rows must equal exactly the valid rows after dedupe (last repeat of
(user, time) wins); every rejected row has a reason naming only columns that were bad; nothing raises
but the documented errors. Through `prepare_batch`, `push(direct=True)` and the sensor path."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from chat_activity.user_realtime import SPEC
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import feature_platform as fp
from feature_platform.derive.pandera_schema import field_rules
from feature_platform.ingest import drain_direct_log, ingest_batch, transport_for
from feature_platform.pipeline import validate
from feature_platform.push import prepare_batch, prepare_small_batch, transportable
from feature_platform.spec import Entity, FeatureViewSpec, Field
from feature_platform.stores.landing import LandingDirectory
from feature_platform.stores.redis_stream import RedisStreamTransport
from feature_platform_tests.helpers import make_embedded_settings, settings_of

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


# --- one rule set (issue 19 item 2): the direct path, its drain and the queued path accept the same rows ------


def rekey(items, base: int):
    """The items with their good keys moved to base + (rank of the key): fresh entities per path and example,
    the same repeats, and the form the key was sent in (text, float, int) kept where exact."""
    ranks = {k: i for i, k in enumerate(sorted({typed["user_id"] for _, typed, bad in items if "user_id" not in bad}))}
    out = []
    for sent, typed, bad in items:
        if "user_id" not in bad:
            k, was = base + ranks[typed["user_id"]], sent["user_id"]
            form = str(k) if isinstance(was, str) else float(k) if isinstance(was, float) and k < 2**53 else k
            sent, typed = {**sent, "user_id": form}, {**typed, "user_id": k}
        out.append((sent, typed, bad))
    return out


PATH_BASES = iter(range(10**6))


def both_paths(platform, direct_batch: pd.DataFrame, queued_batch: pd.DataFrame):
    """Push one batch direct and its twin queued, drain the direct log and ingest the queued batch as the
    view's runs do; returns (direct result, drain result, queued result)."""
    direct = platform.push("user_realtime_events", direct_batch, direct=True)
    queued_id = platform.push("user_realtime_events", queued_batch)
    queued = ingest_batch(platform.runtime, SPEC, queued_id)
    drained = drain_direct_log(platform.runtime, SPEC)
    return direct, drained, queued


def landed(platform, base: int, at: pd.Timestamp | None):
    """Offline rows and online values of the entities base..base+99, keys relative to base."""
    table = platform.offline_table("user_realtime")
    mine = table[(table["user_id"] >= base) & (table["user_id"] < base + 100)].copy()
    mine["user_id"] -= base
    offline = sorted(accepted_tuples(mine))
    users = sorted(set(mine["user_id"]))
    served = platform.online_features(FEATURES, [{"user_id": base + u} for u in users], with_metadata=True,
                                      now=None if at is None else at.to_pydatetime())
    online = {int(r["user_id"]) - base: tuple(None if pd.isna(r[c]) else r[c] for c in ONLINE_COLUMNS)
              for r in served.to_dict("records")}
    return offline, online


FEATURES = [f"user_realtime:{f}" for f in SPEC.feature_names]
ONLINE_COLUMNS = [c for f in SPEC.feature_names for c in (f, f"{f}__status")]


def assert_same_landing(platform, result, drained, queued, base_direct: int, base_queued: int) -> list[tuple]:
    assert (drained.accepted, drained.rejected) == (result.accepted, 0)  # the drain never rejects a served row
    assert (queued.received, queued.accepted, queued.rejected, queued.duplicates) == \
        (result.received, result.accepted, result.rejected, result.duplicates)
    offline_direct, _ = landed(platform, base_direct, None)
    at = max((t for _, t, *_ in offline_direct), default=None)
    offline_direct, online_direct = landed(platform, base_direct, at)
    offline_queued, online_queued = landed(platform, base_queued, at)
    assert offline_direct == offline_queued
    assert online_direct == online_queued
    newest = {}
    for row in offline_direct:
        if row[0] not in newest or row[1] >= newest[row[0]][1]:
            newest[row[0]] = row
    for user, values in online_direct.items():
        if values[1] == "present":  # inside the TTL: online holds the newest offline values exactly
            assert (values[0], values[2], np.float32(values[4])) == newest[user][2:], (user, values)
    return offline_direct


@pytest.fixture(scope="module")
def any_platform(profile, tmp_path_factory):
    with settings_of(profile, tmp_path_factory.mktemp("paths")) as settings:
        yield fp.FeaturePlatform(settings)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches)
def test_direct_and_queued_paths_land_the_same_rows(any_platform, items):
    """Producer-style batches (object columns of anything): both paths accept exactly the valid rows, and
    land them with equal values offline and online; the drain of the direct log accepts all it logged."""
    n = next(PATH_BASES)
    base = (2**61 if n % 2 else 10**9) + n * 1000  # half the examples with keys beyond 2**53
    items = recent(items)
    direct_items, queued_items = rekey(items, base), rekey(items, base + 500)
    result, drained, queued = both_paths(any_platform, as_frame(direct_items, extra=True), as_frame(queued_items, extra=True))
    offline = assert_same_landing(any_platform, result, drained, queued, base, base + 500)
    assert offline == sorted((k - base, *rest) for k, *rest in expected_accepted(direct_items))


@st.composite
def typed_batches(draw):
    """Frames with typed columns (what services build): any float (beyond float32, tiny, -0.0, NaN, inf),
    ints near the int64 edges or as floats, times with nanoseconds, in other zones, far ahead or missing."""
    n = draw(st.integers(1, 8))
    keys = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    seconds = draw(st.lists(st.sampled_from([0, 1, 59, 3599, 86_400]), min_size=n, max_size=n))
    nanos = draw(st.lists(st.integers(0, 999_999_999), min_size=n, max_size=n))
    counts = [draw(st.lists(st.one_of(st.integers(-3, 10**6), st.integers(-(2**63), 2**63 - 1)), min_size=n, max_size=n))
              for _ in range(2)]
    minutes = draw(st.lists(st.one_of(st.floats(), st.sampled_from([1e39, -1e39, 3.4e38, 3.5e38, 1e-45, 1e-50,
                                                                        -1e-50, -0.0, 1.2345678e-12])),
                            min_size=n, max_size=n))
    ahead = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    zone = draw(st.sampled_from(["UTC", "Asia/Kolkata", "America/St_Johns"]))
    now = pd.Timestamp(datetime.now(timezone.utc)).floor("s")
    stamps = [now - pd.Timedelta(seconds=s) + pd.Timedelta(nanoseconds=ns) + pd.Timedelta(days=1 if a == 0 else 0)
              for s, ns, a in zip(seconds, nanos, ahead)]
    float_counts = draw(st.booleans())
    return pd.DataFrame({
        "user_id": np.array(keys, dtype="int64"),
        "event_timestamp": pd.Series(stamps).dt.tz_convert(zone),
        **{name: (np.array(c, dtype="float64") if float_counts else typed_column(draw, c, ["int64", "Int64"]))
           for name, c in zip(INT_FEATURES, counts)},
        "last_active_minutes_ago": typed_column(draw, minutes, ["float64", "float32"]),
    })


def typed_column(draw, values, kinds):
    """`values` as one of the numpy / pandas dtypes a producer's frame may have."""
    kind = draw(st.sampled_from(kinds))
    if kind == "Int64":
        return pd.array(values, dtype="Int64")
    with np.errstate(over="ignore"):  # 1e39 as float32 is inf: what such a producer sends
        return np.array(values, dtype=kind)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed_batches())
def test_typed_batches_land_the_same_rows_on_both_paths(any_platform, batch):
    n = next(PATH_BASES)
    base = (2**61 if n % 2 else 10**9) + n * 1000
    result, drained, queued = both_paths(any_platform, batch.assign(user_id=batch["user_id"] + base),
                                         batch.assign(user_id=batch["user_id"] + base + 500))
    offline = assert_same_landing(any_platform, result, drained, queued, base, base + 500)
    for _, stamp, messages, tokens, minutes in offline:
        assert messages >= 0 and tokens >= 0 and np.isfinite(minutes) and minutes >= 0
        assert stamp.nanosecond == 0  # kept to the microsecond, on every path


# Every dtype and kind of constraint a pushed view can declare (the real one has ints and a float32 only).
WIDE = FeatureViewSpec(
    name="wide_events", description="every dtype and constraint a pushed view can declare",
    entity=Entity("thing", "thing_id", dtype="string"),
    fields=(Field("count", "int64", ge=0, le=10**12, nullable=True), Field("ratio", "float64", ge=-1, le=1),
            Field("score", "float32", nullable=True), Field("label", "string", isin=("a", "b", "True")),
            Field("note", "string", nullable=True), Field("flag", "bool", nullable=True), Field("strict_flag", "bool")),
    push_source="wide_events", ttl=timedelta(hours=1), owner="platform", freshness_sla=timedelta(minutes=5), version=1)

odd_values = st.one_of(
    st.none(), st.just(float("nan")), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=4),
    st.sampled_from(["a", "b", "True", "false", "1", " 7 ", "1.5", "nan", "-inf", "", "1e400", "9" * 400,
                     "2026-06-01T11:00:00Z", np.int64(5), np.float32(0.1), np.bool_(True), np.uint64(2**64 - 1),
                     pd.Timestamp("2026-06-01T11:59:00.000000123Z"), pd.Timestamp("2026-06-01 12:00", tz="Asia/Kolkata"),
                     pd.Timestamp("2026-06-01"), [1], [1, 2], Decimal("1.5"), Decimal("3"), Decimal("NaN"), Fraction(1, 2),
                     Fraction(3), b"7", date(2026, 6, 1)]))
WIDE_GOOD = {
    "thing_id": st.sampled_from(["t1", "t2", "t3"]),
    "count": st.one_of(st.none(), st.integers(0, 10**12)),
    "ratio": st.floats(-1, 1),
    "score": st.one_of(st.none(), st.floats(width=32, allow_infinity=False, allow_nan=False)),
    "label": st.sampled_from(["a", "b", "True"]),
    "note": st.one_of(st.none(), st.text(max_size=6)),
    "flag": st.one_of(st.none(), st.booleans()),
    "strict_flag": st.booleans(),
    "event_timestamp": st.integers(0, 7200 * 10**9).map(lambda ns: NOW - pd.Timedelta(nanoseconds=ns)),
}
TYPED = {"count": "int64", "ratio": "float64", "score": "float32", "flag": bool, "strict_flag": bool}


@st.composite
def wide_batches(draw):
    n = draw(st.integers(0, 6))
    columns = {}
    for name, good in WIDE_GOOD.items():
        values = draw(st.lists(st.one_of(good, good, good, odd_values), min_size=n, max_size=n))
        if draw(st.booleans()):  # sometimes typed, as a frame built from clean values would be
            try:
                with np.errstate(all="ignore"):
                    typed = pd.Series(values, dtype=TYPED.get(name, object))
                if name != "event_timestamp" and [None if pd.isna(v) else v for v in typed.tolist()] == values:
                    columns[name] = typed
                    continue
            except (TypeError, ValueError, OverflowError):
                pass
        columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns, index=range(n))


def without_created(prepared) -> pd.DataFrame:
    return prepared.accepted.drop(columns="created_timestamp")


def check_transport(spec, transport, batch: pd.DataFrame) -> None:
    """The drain: the direct path's accepted rows, logged and judged again, are all accepted unchanged. The
    queued path: the batch as the transport carries it is judged as the direct path judged it."""
    direct = prepare_batch(spec, batch, now=NOW)
    if not direct.accepted.empty:
        again = prepare_batch(spec, transport.read(transport.write(direct.accepted)), now=NOW)
        assert again.rejected.empty, again.rejected["reason"].tolist()
        pd.testing.assert_frame_equal(without_created(again), without_created(direct))
    queued = prepare_batch(spec, transport.read(transport.write(transportable(batch))), now=NOW)
    pd.testing.assert_frame_equal(without_created(queued), without_created(direct))
    assert (len(queued.rejected), queued.duplicates) == (len(direct.rejected), direct.duplicates)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(wide_batches().map(lambda b: (WIDE, b)),
                 batches.map(lambda items: (SPEC, as_frame(items))), typed_batches().map(lambda b: (SPEC, b))))
def test_the_landing_directory_carries_values_exactly(tmp_path, example):
    check_transport(*example[:1], LandingDirectory(tmp_path, "fuzz"), example[1])


@pytest.mark.services
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(wide_batches().map(lambda b: (WIDE, b)),
                 batches.map(lambda items: (SPEC, as_frame(items))), typed_batches().map(lambda b: (SPEC, b))))
def test_the_redis_stream_carries_values_exactly(services_settings, example):
    check_transport(example[0], RedisStreamTransport(services_settings, "fuzz"), example[1])


@settings(max_examples=150, deadline=None)
@given(wide_batches())
def test_accepted_rows_pass_the_pandera_schema(batch):
    """Nothing the push path accepts breaks a check the Pandera schema of computed partitions makes."""
    rows = prepare_batch(WIDE, batch, now=NOW).accepted.drop(columns="created_timestamp")
    failures = validate(WIDE, rows)
    rules = {r.check for f in WIDE.fields for r in field_rules(f)}
    assert failures is None or not failures["check"].isin(rules).any()  # (a nullable int column is Int64 here)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-2, 2), st.integers(-5, 10**13), st.sampled_from(["a", "b", "c", "True"]),
                          st.sampled_from([0.5, float("inf"), float("-inf"), 3.4e38])), min_size=1, max_size=6))
def test_push_rejects_a_row_for_exactly_the_checks_pandera_fails_it_on(rows):
    """One rule set: typed rows judged by the push path and by the Pandera schema fail the same checks."""
    n = len(rows)
    frame = pd.DataFrame({
        "thing_id": [f"t{i}" for i in range(n)],
        "count": np.array([r[1] for r in rows], dtype="int64"),
        "ratio": np.array([r[0] for r in rows], dtype="float64"),
        "score": np.array([r[3] for r in rows], dtype="float32"),
        "label": pd.Series([r[2] for r in rows], dtype=object),
        "note": pd.Series(["x"] * n, dtype=object),
        "flag": np.ones(n, dtype=bool),
        "strict_flag": np.zeros(n, dtype=bool),
        "event_timestamp": pd.Series([NOW - pd.Timedelta(seconds=i) for i in range(n)]),
    })
    failures = validate(WIDE, frame)
    pandera = set() if failures is None else {
        (f"t{int(i)}", f"{column}: failed {check}") for i, column, check in failures[["index", "column", "check"]].itertuples(index=False)}
    rejected = prepare_batch(WIDE, frame, now=NOW).rejected
    ours = {(thing, part.rsplit(" (value ", 1)[0]) for thing, reason in zip(rejected["thing_id"], rejected["reason"])
            for part in reason.split("; ")}
    assert ours == pandera


# --- at-least-once delivery (issue 19 item 5): the offline table holds each event once, the last write winning --

OFFSETS = [0, 7, 86_400 + 5, 3 * 86_400]  # seconds before now: the same day, and other days

deliveries = st.lists(st.tuples(
    st.sampled_from(["queued", "direct", "replay"]),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 50)), min_size=1, max_size=5)),
    min_size=1, max_size=5)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deliveries)
def test_the_offline_table_holds_each_event_once_and_the_last_write_wins(any_platform, writes):
    """Batches of a few events (user, time, value) delivered queued, direct, or replayed (a queued batch
    processed again, as after a crash before its acknowledgement), in any order, across days: the table
    equals the last write of each (user, time), on both profiles."""
    base = 3 * 2**60 + next(PATH_BASES) * 100
    now = pd.Timestamp(datetime.now(timezone.utc)).floor("s")
    model, queued = {}, []
    for how, rows in writes:
        if how == "replay" and queued:
            batch_id, rows = queued[rows[0][0] % len(queued)]
            ingest_batch(any_platform.runtime, SPEC, batch_id)
        else:
            batch = pd.DataFrame({
                "user_id": [base + u for u, _, _ in rows],
                "event_timestamp": [now - pd.Timedelta(seconds=OFFSETS[t]) for _, t, _ in rows],
                "current_session_messages": [v for *_, v in rows],
                "current_session_tokens": [10 * v for *_, v in rows],
                "last_active_minutes_ago": [v / 4 for *_, v in rows],
            })
            if how == "direct":
                any_platform.push("user_realtime_events", batch, direct=True)
                drain_direct_log(any_platform.runtime, SPEC)
            else:
                batch_id = any_platform.push("user_realtime_events", batch)
                ingest_batch(any_platform.runtime, SPEC, batch_id)
                queued.append((batch_id, rows))
        for u, t, v in rows:  # in row order: within a batch, too, the last repeat wins
            model[(u, now - pd.Timedelta(seconds=OFFSETS[t]))] = (v, 10 * v, np.float32(v / 4))
    table = any_platform.offline_table("user_realtime")
    mine = table[(table["user_id"] >= base) & (table["user_id"] < base + 100)]
    stored = [(u - base, t, (m, k, np.float32(x))) for u, t, m, k, x in accepted_tuples(mine)]
    assert len(stored) == len({(u, t) for u, t, _ in stored})  # each event once
    assert {(u, t): values for u, t, values in stored} == model


def test_object_columns_arrow_would_change_go_through_transports_unchanged(tmp_path):
    """Arrow types [0.5, True] as floats (True became 1.0, then a valid minutes value on the sensor path
    only) and [1, 2.5] as floats; such columns travel as text that is judged exactly as the value."""
    batch = pd.DataFrame({
        "user_id": pd.Series([1, 2, 3], dtype=object),
        "event_timestamp": [NOW.isoformat()] * 3,
        "current_session_messages": pd.Series([1, 2.0, 3], dtype=object),
        "current_session_tokens": pd.Series([1, 2, Decimal("3")], dtype=object),
        "last_active_minutes_ago": pd.Series([0.5, True, 2], dtype=object),
    })
    direct = prepare_batch(SPEC, batch, now=NOW)
    assert direct.accepted["user_id"].tolist() == [1, 3]
    assert direct.rejected["reason"].tolist() == ["last_active_minutes_ago: not a number (float32)"]
    check_transport(SPEC, LandingDirectory(tmp_path, "fuzz"), batch)
