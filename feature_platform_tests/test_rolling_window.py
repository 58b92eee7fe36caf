"""The one-pass rolling aggregation equals `aggregate_day` for every day (the definition), on
hypothesis-generated event logs with gaps, duplicates, nulls, ties and events outside the range."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from chat_activity.user_activity import SPEC
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from feature_platform.compute.rolling_window import aggregate_chunk
from feature_platform.compute.window_aggregate import aggregate_day
from feature_platform.demo.generator import generate_day
from feature_platform.errors import AggregationOverflowError
from feature_platform.spec import Agg, Field

FIRST = date(2026, 3, 1)
MODELS = ["b", "a", "c", None]


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-9)


def compare(spec, raw: pd.DataFrame, days: list[date]) -> None:
    got = list(aggregate_chunk(spec, raw, days))
    assert [d for d, _ in got] == sorted(set(days))
    for day, frame in got:
        assert_same(frame, aggregate_day(spec, raw, day))


@st.composite
def event_logs(draw):
    n = draw(st.integers(0, 60))
    users = draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
    # Days -9 .. 14 around FIRST: before the range (closing rows of the first day), inside, after.
    minutes = draw(st.lists(st.integers(-9 * 1440, 14 * 1440), min_size=n, max_size=n))
    sessions = draw(st.lists(st.sampled_from(["s1", "s2", "s3", "s4", None]), min_size=n, max_size=n))
    durations = draw(st.lists(st.one_of(st.none(), st.floats(0, 1e4, allow_nan=False)), min_size=n, max_size=n))
    ints = draw(st.lists(st.integers(0, 10**12), min_size=n, max_size=n))
    models = draw(st.lists(st.sampled_from(MODELS), min_size=n, max_size=n))
    base = pd.Timestamp(FIRST, tz="UTC")
    return pd.DataFrame({
        "user_id": pd.Series(users, dtype="int64"),
        "session_id": pd.Series(sessions, dtype=object),
        "event_timestamp": pd.Series([base + pd.Timedelta(minutes=m) for m in minutes],
                                     dtype="datetime64[us, UTC]"),
        "duration_sec": pd.Series(durations, dtype="float64"),
        "message_count": pd.Series(ints, dtype="int64"),
        "tool_invocations": pd.Series([i % 7 for i in ints], dtype="int64"),
        "model": pd.Series(models, dtype=object),
        "tokens": pd.Series(ints[::-1], dtype="int64"),
    })


WIDE = replace(
    SPEC,
    name="wide",
    fields=(*SPEC.fields, Field("events_7d", "int64"), Field("shortest_sec", "float64", nullable=True),
            Field("longest_sec", "float64", nullable=True), Field("durations_7d", "int64")),
    aggregation=replace(SPEC.aggregation, aggs=(
        *SPEC.aggregation.aggs, Agg("events_7d", "count", "session_id"), Agg("shortest_sec", "min", "duration_sec"),
        Agg("longest_sec", "max", "duration_sec"), Agg("durations_7d", "count", "duration_sec"))),
)
THREE_DAY = replace(SPEC, name="three_day", aggregation=replace(SPEC.aggregation, window=timedelta(days=3)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=event_logs(), n_days=st.integers(1, 6), skip=st.booleans())
@pytest.mark.parametrize("spec", [SPEC, WIDE, THREE_DAY], ids=lambda s: s.name)
def test_equals_the_per_day_definition(spec, raw, n_days, skip):
    days = [FIRST + timedelta(days=i) for i in range(n_days)]
    if skip and n_days > 2:
        days = days[::2]  # days need not be contiguous
    compare(spec, raw, days)


def test_equals_the_per_day_definition_on_generated_data():
    """A realistic log: 400 users over 40 days (quiet periods make many closing rows)."""
    days = [FIRST + timedelta(days=i) for i in range(40)]
    raw = pd.concat([generate_day(d, 400, seed=11) for d in [FIRST - timedelta(days=8), *days]], ignore_index=True)
    raw = pd.concat([raw, raw.sample(50, random_state=1)], ignore_index=True)  # some sessions logged twice
    compare(SPEC, raw.sample(frac=1.0, random_state=2).reset_index(drop=True), days[8:])
    closing = sum(int((aggregate_day(SPEC, raw, d)["sessions_7d"] == 0).sum()) for d in days[8:])
    assert closing > 0


def test_many_distinct_values_take_the_pair_path(monkeypatch):
    """`mode` over more distinct values than the direct path handles gives the same answer."""
    from feature_platform.compute import rolling_window

    monkeypatch.setattr(rolling_window, "MODE_DIRECT_MAX_VALUES", 0)
    days = [FIRST + timedelta(days=i) for i in range(12)]
    raw = pd.concat([generate_day(d, 300, seed=5) for d in [FIRST - timedelta(days=8), *days]], ignore_index=True)
    compare(SPEC, raw, days)


def test_no_events_gives_empty_partitions_with_the_schema():
    raw = generate_day(FIRST, 10, seed=1).iloc[:0]
    ((day, frame),) = list(aggregate_chunk(SPEC, raw, [FIRST]))
    assert day == FIRST and frame.empty
    assert list(frame.columns) == ["user_id", *SPEC.feature_names, "event_timestamp"]
    assert_same(frame, aggregate_day(SPEC, raw, FIRST))


def test_large_integers_stay_exact():
    big = np.int64(2**62 // 8)
    raw = generate_day(FIRST, 200, seed=1).head(4).assign(user_id=1, tokens=big)
    assert len(raw) == 4
    ((_, frame),) = list(aggregate_chunk(SPEC, raw, [FIRST]))
    assert frame["total_tokens_7d"].item() == 4 * big


# --- integers at the edges of int64 -------------------------------------------------------------------------------
# Sums over integer columns must be exact or fail: int64 arithmetic wraps around silently (four sessions of 2**62
# tokens summed to 0). Every integer aggregation of a spec, against a Python-int reference.

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EXTREME_INTS = st.one_of(
    st.sampled_from([INT64_MAX, INT64_MIN, 2**62, -(2**62), 2**62 - 1, 2**53 + 1, 2**32, 2**32 - 1, -(2**32), 2**31,
                     -1, 0, 1]),
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(-1000, 1000),
)
INT_AGGS = (
    Agg("total", "sum", "tokens"), Agg("messages", "sum", "message_count"), Agg("events", "count", "tokens"),
    Agg("sessions", "count_distinct", "session_id"), Agg("low", "min", "tokens"), Agg("high", "max", "tokens"),
    Agg("mean_tokens", "mean", "tokens"), Agg("total_as_float", "sum", "tokens"),
)
EXTREME = replace(
    SPEC, name="extreme",
    # Fields in another order than the aggregations: the error names the first overflowing feature in field order.
    fields=(Field("messages", "int64"), Field("total", "int64"), Field("events", "int64"), Field("sessions", "int64"),
            Field("low", "int64", nullable=True), Field("high", "int64", nullable=True),
            Field("mean_tokens", "float64", nullable=True), Field("total_as_float", "float64")),
    aggregation=replace(SPEC.aggregation, window=timedelta(days=3), aggs=INT_AGGS),
)


@st.composite
def extreme_logs(draw):
    n = draw(st.integers(0, 30))
    users = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    minutes = draw(st.lists(st.integers(-4 * 1440, 6 * 1440), min_size=n, max_size=n))
    base = pd.Timestamp(FIRST, tz="UTC")
    return pd.DataFrame({
        "user_id": pd.Series(users, dtype="int64"),
        "session_id": pd.Series(draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), min_size=n, max_size=n)), dtype=object),
        "event_timestamp": pd.Series([base + pd.Timedelta(minutes=m) for m in minutes], dtype="datetime64[us, UTC]"),
        "message_count": pd.Series(draw(st.lists(EXTREME_INTS, min_size=n, max_size=n)), dtype="int64"),
        "tokens": pd.Series(draw(st.lists(EXTREME_INTS, min_size=n, max_size=n)), dtype="int64"),
    })


def exact_windows(spec, raw: pd.DataFrame, day: date) -> dict[int, dict]:
    """Per entity with events in the window of `day`: each aggregation in Python ints (exact)."""
    end = pd.Timestamp(day + timedelta(days=1), tz="UTC")
    rows = raw[(raw["event_timestamp"] >= end - spec.aggregation.window) & (raw["event_timestamp"] < end)]
    out = {}
    for user, group in rows.groupby("user_id"):
        values = {}
        for a in spec.aggregation.aggs:
            column = [int(v) for v in group[a.column]] if a.column != "session_id" else list(group[a.column])
            values[a.feature] = {"sum": sum, "count": len, "min": min, "max": max,
                                 "count_distinct": lambda c: len(set(c)),
                                 "mean": lambda c: sum(c) / len(c)}[a.fn](column)  # int / int: correctly rounded
        out[int(user)] = values
    return out


def first_overflow(spec, windows: dict[date, dict[int, dict]]):
    """(day, entity, feature, value) of the first int64 sum outside int64, by day, entity, then field order."""
    sums = [f.name for f in spec.fields if f.dtype == "int64" and spec_fn(spec, f.name) == "sum"]
    for day in sorted(windows):
        for user in sorted(windows[day]):
            for name in sums:
                value = windows[day][user][name]
                if not INT64_MIN <= value <= INT64_MAX:
                    return day, user, name, value
    return None


def spec_fn(spec, feature: str) -> str:
    return next(a.fn for a in spec.aggregation.aggs if a.feature == feature)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=extreme_logs(), n_days=st.integers(1, 4))
def test_integer_aggregations_are_exact_or_fail_naming_the_first_overflow(raw, n_days):
    days = [FIRST + timedelta(days=i) for i in range(n_days)]
    windows = {day: exact_windows(EXTREME, raw, day) for day in days}
    overflow = first_overflow(EXTREME, windows)
    event("overflow" if overflow else "exact")
    if overflow is not None:
        day, user, feature, value = overflow
        for compute in (lambda: aggregate_chunk(EXTREME, raw, days), lambda: aggregate_day(EXTREME, raw, day)):
            with pytest.raises(AggregationOverflowError) as err:
                compute()
            assert (err.value.view, err.value.partition, err.value.entity, err.value.feature, err.value.value) == \
                ("extreme", day.isoformat(), user, feature, value)
            assert f"partition {day}: feature {feature!r} (sum of " in str(err.value)
            assert f"of user_id={user} is {value}, outside int64" in str(err.value)
        days = [d for d in days if d < day]  # the days before it compute (a chunk of them, or alone)
    for day, frame in aggregate_chunk(EXTREME, raw, days) if days else []:
        reference = aggregate_day(EXTREME, raw, day)
        exact_cols = [c for c in frame.columns if c != "mean_tokens"]
        # A nullable int column is Int64 on a day with closing rows (null), in the chunk: whatever its own day has.
        pd.testing.assert_frame_equal(frame[exact_cols], reference[exact_cols], check_exact=True, check_dtype=False)
        live = frame[frame["events"] > 0]  # the others are closing rows
        assert sorted(live["user_id"]) == sorted(windows[day])
        for row in live.itertuples():
            want = windows[day][row.user_id]
            assert (row.total, row.messages, row.events, row.sessions, row.low, row.high) == \
                (want["total"], want["messages"], want["events"], want["sessions"], want["low"], want["high"])
            assert row.total_as_float == float(want["total_as_float"])  # the exact sum, rounded once
            assert math.isclose(row.mean_tokens, want["mean_tokens"], rel_tol=1e-12)


def test_the_exact_integer_path_equals_the_per_day_definition_on_generated_data(monkeypatch):
    """Sums that could overflow take the two-part path: on ordinary data it gives exactly the same rows."""
    from feature_platform.compute import rolling_window

    monkeypatch.setattr(rolling_window, "may_overflow", lambda values: True)
    days = [FIRST + timedelta(days=i) for i in range(12)]
    raw = pd.concat([generate_day(d, 300, seed=5) for d in [FIRST - timedelta(days=8), *days]], ignore_index=True)
    compare(SPEC, raw, days)
    big = raw.assign(tokens=raw["tokens"] * 2**40 + 1)  # sums beyond 2**53: float64 would round them
    for day, frame in aggregate_chunk(SPEC, big, days):
        want = aggregate_day(SPEC, big, day)
        assert want["total_tokens_7d"].max() > 2**53
        assert frame["total_tokens_7d"].tolist() == want["total_tokens_7d"].tolist()


def test_four_sessions_of_two_to_the_62_tokens_fail_naming_view_partition_feature_and_entity():
    """The reported case: the int64 sum wrapped to exactly the old total, and nothing noticed."""
    raw = generate_day(FIRST, 200, seed=1)
    spike = raw[raw["user_id"] == raw["user_id"].iloc[0]].head(1)
    user = int(spike["user_id"].item())
    raw = pd.concat([raw] + [spike.assign(session_id=f"big{i}", tokens=2**62) for i in range(4)], ignore_index=True)
    want = int(raw.loc[raw["user_id"] == user, "tokens"].sum()) + 2**64  # the wrapped sum, corrected
    for compute in (lambda: aggregate_chunk(SPEC, raw, [FIRST]), lambda: aggregate_day(SPEC, raw, FIRST)):
        with pytest.raises(AggregationOverflowError, match=rf"feature view 'user_activity', partition {FIRST}: feature "
                           rf"'total_tokens_7d' \(sum of 'tokens'\) of user_id={user} is {want}, outside int64"):
            compute()


# --- a chunk aggregated a range of entities at a time (rolling_window.SHARD_EVENTS) -----------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=event_logs(), n_days=st.integers(1, 6), shard_events=st.integers(1, 25), string_keys=st.booleans(),
       aggs=st.sampled_from([SPEC, WIDE, THREE_DAY]))
def test_entity_ranges_equal_the_per_day_definition(raw, n_days, shard_events, string_keys, aggs):
    """Any window and aggregation mix, int64 and string keys: the chunk computed a few entities at a time equals
    `aggregate_day` for every day (and so the chunk computed in one pass)."""
    from unittest import mock

    from feature_platform.compute import rolling_window

    spec = aggs
    if string_keys:  # keys whose string order is not their numeric order ("10" < "9")
        spec = replace(aggs, entity=replace(aggs.entity, dtype="string"))
        raw = raw.assign(user_id=(raw["user_id"] * 7 % 11).map(lambda u: f"{u}").astype(object))
    days = [FIRST + timedelta(days=i) for i in range(n_days)]
    with mock.patch.object(rolling_window, "SHARD_EVENTS", shard_events):
        compare(spec, raw, days)


def test_entity_ranges_on_generated_data_equal_one_pass():
    from unittest import mock

    from feature_platform.compute import rolling_window

    days = [FIRST + timedelta(days=i) for i in range(20)]
    raw = pd.concat([generate_day(d, 500, seed=3) for d in [FIRST - timedelta(days=8), *days]], ignore_index=True)
    one = aggregate_chunk(SPEC, raw, days)
    with mock.patch.object(rolling_window, "SHARD_EVENTS", 400):
        ranged = aggregate_chunk(SPEC, raw, days)
    pd.testing.assert_frame_equal(ranged.frame, one.frame, check_exact=True)
    assert ranged.bounds.tolist() == one.bounds.tolist() and ranged.days == one.days


def test_entity_ranges_finishing_out_of_order_are_placed_in_order(monkeypatch):
    """The ranges run on `PASS_THREADS` threads: each range's rows go to its place whichever finishes first (here
    every range waits longer than the next one), and a range that fails raises after the ranges before it, with
    the ranges not started yet never started."""
    import threading
    import time

    from feature_platform.compute import rolling_window

    days = [FIRST + timedelta(days=i) for i in range(10)]
    raw = pd.concat([generate_day(d, 300, seed=4) for d in [FIRST - timedelta(days=8), *days]], ignore_index=True)
    one = aggregate_chunk(SPEC, raw, days)
    monkeypatch.setattr(rolling_window, "SHARD_EVENTS", 100)
    monkeypatch.setattr(rolling_window, "PASS_THREADS", 2)
    real, lock, started, threads = rolling_window._aggregate_chunk, threading.Lock(), [], set()
    released = threading.Event()

    def fake(spec, events, *args, fail_at=None):
        with lock:
            started.append(int(events.k[0]))
            n = len(started)
            threads.add(threading.current_thread().name)
        if fail_at is None:
            time.sleep(max(0.0, 0.02 - 0.002 * n))  # the earlier a range starts, the later it finishes
        elif n == fail_at:
            raise RuntimeError("range failed (injected)")
        elif n > fail_at:  # the ranges that started beside it are still running when the failure is raised
            released.wait(0.5)
        return real(spec, events, *args)

    monkeypatch.setattr(rolling_window, "_aggregate_chunk", fake)
    ranged = aggregate_chunk(SPEC, raw, days)
    pd.testing.assert_frame_equal(ranged.frame, one.frame, check_exact=True)
    total = len(started)
    assert total > 6 and len(threads) == 2
    started.clear()
    monkeypatch.setattr(rolling_window, "_aggregate_chunk", lambda *a: fake(*a, fail_at=3))
    with pytest.raises(RuntimeError, match="range failed"):
        aggregate_chunk(SPEC, raw, days)
    released.set()
    assert len(started) <= 3 + 2 < total  # the failing one, and one more on each thread at most; the rest never start


def test_an_overflow_in_a_later_entity_range_is_the_first_by_day():
    """Entity ranges are computed in key order, but the error names the first overflow by day, then key."""
    from unittest import mock

    from feature_platform.compute import rolling_window

    days = [FIRST, FIRST + timedelta(days=1)]
    raw = pd.concat([generate_day(d, 50, seed=2) for d in days], ignore_index=True)
    low, high = sorted(raw["user_id"].unique())[0], sorted(raw["user_id"].unique())[-1]
    spike = lambda user, day: raw[raw["user_id"] == user].head(1).assign(  # noqa: E731
        event_timestamp=pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=1), tokens=2**62)
    raw = pd.concat([raw, *(spike(low, days[1]) for _ in range(4)), *(spike(high, days[0]) for _ in range(4))],
                    ignore_index=True)
    with pytest.raises(AggregationOverflowError) as want:
        aggregate_day(SPEC, raw, days[0])
    with mock.patch.object(rolling_window, "SHARD_EVENTS", 20), pytest.raises(AggregationOverflowError) as got:
        aggregate_chunk(SPEC, raw, days)
    assert str(got.value) == str(want.value) and got.value.entity == high


# --- strings as the Parquet reader gives them (Arrow-backed): factorized by Arrow --------------------------------------

ARROW_MODELS = ["b", "a", "c", "é", "Z", "ab", None]  # code-point order differs from case- or locale-aware orders


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=event_logs(), n_days=st.integers(1, 6), models=st.lists(st.sampled_from(ARROW_MODELS), min_size=60,
       max_size=60), shard_events=st.sampled_from([1, 7, 10**6]))
def test_arrow_backed_strings_equal_the_per_day_definition(raw, n_days, models, shard_events):
    """Session ids and models as `string[pyarrow]` (the reader's dtype, factorized by Arrow here): every day equals
    `aggregate_day` over the same events with Python strings, ties of `mode` to the smallest by code point."""
    from unittest import mock

    from feature_platform.compute import rolling_window
    from feature_platform.sources.rows import STRING

    raw = raw.assign(model=pd.Series(models[: len(raw)], dtype=object, index=raw.index))
    arrow = raw.assign(session_id=raw["session_id"].astype(STRING), model=raw["model"].astype(STRING))
    days = [FIRST + timedelta(days=i) for i in range(n_days)]
    with mock.patch.object(rolling_window, "SHARD_EVENTS", shard_events):
        got = list(aggregate_chunk(SPEC, arrow, days))
    assert [d for d, _ in got] == days
    for day, frame in got:
        assert_same(frame, aggregate_day(SPEC, raw, day))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=event_logs(), n_days=st.integers(1, 6), cuts=st.lists(st.integers(0, 200), max_size=4),
       shard_events=st.sampled_from([1, 7, 10**6]))
def test_arrow_strings_in_several_chunks_equal_the_per_day_definition(raw, n_days, cuts, shard_events):
    """Session ids as the reader gives them: one Arrow chunk per file read, taken from a range of entities at a
    time (after the chunks are made one)."""
    from unittest import mock

    from feature_platform.compute import rolling_window

    values = raw["session_id"].tolist()
    bounds = sorted({min(c, len(values)) for c in cuts} | {0, len(values)})
    chunked = pa.chunked_array([pa.array(values[a:b], pa.string()) for a, b in zip(bounds[:-1], bounds[1:])],
                               type=pa.string())
    arrow = raw.assign(session_id=pd.Series(pd.arrays.ArrowStringArray(chunked), index=raw.index))
    days = [FIRST + timedelta(days=i) for i in range(n_days)]
    with mock.patch.object(rolling_window, "SHARD_EVENTS", shard_events):
        got = list(aggregate_chunk(SPEC, arrow, days))
    for day, frame in got:
        assert_same(frame, aggregate_day(SPEC, raw, day))


def test_arrow_backed_strings_in_several_chunks_factorize_as_one():
    """A column of several Arrow chunks (one per file read) is encoded with one dictionary, as pandas would."""
    from feature_platform.compute.rolling_window import _distinct_codes, _sorted_codes
    from feature_platform.sources.rows import STRING

    chunked = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["b", None, "a"], ["a", "c", "b"]])))
    codes, n_values = _distinct_codes(chunked, np.arange(len(chunked)), np.array([0, len(chunked)]))
    want_codes, want_uniques = pd.factorize(chunked.astype(object))
    assert codes.tolist() == want_codes.tolist() and n_values == len(want_uniques)
    codes, labels = _sorted_codes(chunked)
    want_codes, want_uniques = pd.factorize(chunked.astype(object), sort=True)
    assert codes.tolist() == want_codes.tolist() and labels.tolist() == list(want_uniques) and labels.dtype == object
    assert _sorted_codes(pd.Series([], dtype=STRING))[0].tolist() == _distinct_codes(pd.Series([], dtype=STRING), np.zeros(0, dtype=np.int64), np.array([0]))[0].tolist() == []


def test_events_made_once_aggregate_as_the_raw_frame_and_only_once():
    """The engine's path: the raw frame's events (`events_of`) give the chunk of the raw frame; they are consumed."""
    from feature_platform.compute.rolling_window import events_of

    days = [FIRST + timedelta(days=i) for i in range(5)]
    raw = pd.concat([generate_day(d, 300, seed=4) for d in [FIRST - timedelta(days=8), *days]], ignore_index=True)
    events = events_of(SPEC, raw, days)
    got, want = aggregate_chunk(SPEC, events, days), aggregate_chunk(SPEC, raw, days)
    pd.testing.assert_frame_equal(got.frame, want.frame, check_exact=True)
    assert got.bounds.tolist() == want.bounds.tolist() and got.days == want.days
    with pytest.raises(ValueError, match="already aggregated"):
        aggregate_chunk(SPEC, events, days)
    with pytest.raises(ValueError, match="cannot compute"):
        aggregate_chunk(SPEC, events_of(SPEC, raw, days), days[1:])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), top=st.sampled_from([1, 2**16, 2**16 + 1, 2**33, 2**48 - 1, 2**48, 2**62]),
       negative=st.booleans(), n=st.sampled_from([10, 2**16, 2**16 + 3, 200_000]))
def test_the_radix_order_is_numpy_s_stable_order(seed, top, negative, n):
    """`_stable_order` (a radix sort of 16-bit digits for many codes below 2**48) gives `np.argsort(kind="stable")`'s
    permutation exactly, ties in input order, whatever the codes' range."""
    from feature_platform.compute.rolling_window import _stable_order

    rng = np.random.default_rng(seed)
    codes = rng.integers(-top if negative else 0, top, size=n, dtype=np.int64)
    codes[rng.integers(0, n, size=n // 3)] = codes[0]  # many ties
    assert np.array_equal(_stable_order(codes), np.argsort(codes, kind="stable"))


def test_a_chunk_of_more_events_than_a_radix_digit_equals_the_per_day_definition():
    """Above 2**16 events the pass sorts by radix (`_stable_order`), a range of entities at a time."""
    from unittest import mock

    from feature_platform.compute import rolling_window

    days = [FIRST + timedelta(days=i) for i in range(3)]
    raw = pd.concat([generate_day(FIRST + timedelta(days=i), 16000, seed=6) for i in range(-8, 3)], ignore_index=True)
    assert len(raw) > 2**16
    with mock.patch.object(rolling_window, "SHARD_EVENTS", 2**16 + 1000):
        compare(SPEC, raw, days)


def test_events_made_from_a_frame_handed_over_free_its_columns_and_aggregate_the_same():
    """The engine hands the raw frame over (`consume`): each column is deleted once its arrays are made, so the raw
    frame does not stay beside the events; the events aggregate exactly as those of a frame left alone."""
    from feature_platform.compute.rolling_window import events_of
    from feature_platform.sources.rows import STRING

    days = [FIRST + timedelta(days=i) for i in range(5)]
    raw = pd.concat([generate_day(d, 300, seed=5) for d in [FIRST - timedelta(days=8), *days]], ignore_index=True)
    raw = raw.assign(session_id=raw["session_id"].astype(STRING), model=raw["model"].astype(STRING),
                     unused=1)  # a column no aggregation reads stays
    kept = raw.copy()
    events = events_of(SPEC, raw, days, consume=True)
    assert list(raw.columns) == ["unused"]
    got, want = aggregate_chunk(SPEC, events, days), aggregate_chunk(SPEC, kept, days)
    pd.testing.assert_frame_equal(got.frame, want.frame, check_exact=True)
    assert got.bounds.tolist() == want.bounds.tolist()
    left_alone = kept.copy()
    events_of(SPEC, left_alone, days)
    pd.testing.assert_frame_equal(left_alone, kept)


def test_an_arrow_backed_column_with_no_value_in_the_chunk_gives_the_empty_mode():
    """A nullable string column that is null in every event of a chunk has no value to rank: `mode` is the empty
    value on every day, as `aggregate_day` gives (it raised IndexError). Found by the property test above."""
    from feature_platform.sources.rows import STRING

    days = [FIRST + timedelta(days=i) for i in range(3)]
    raw = pd.concat([generate_day(d, 40, seed=6) for d in [FIRST - timedelta(days=8), *days]], ignore_index=True)
    raw = raw.assign(model=pd.Series([None] * len(raw), dtype=object))
    arrow = raw.assign(session_id=raw["session_id"].astype(STRING), model=raw["model"].astype(STRING))
    got = list(aggregate_chunk(SPEC, arrow, days))
    assert [d for d, _ in got] == days
    for day, frame in got:
        assert_same(frame, aggregate_day(SPEC, raw, day))


CAST_INPUTS = {
    "int64": np.array([3, -1, 0], dtype=np.int64), "uint8": np.array([1, 2, 255], dtype=np.uint8),
    "bool": np.array([True, False, True]), "float64": np.array([1.0, 2.5, -3.0]),
    "float32": np.array([1.5, 2.0, 0.0], dtype=np.float32), "float with NaN": np.array([1.0, np.nan, 2.0]),
    "float with inf": np.array([1.0, np.inf, 2.0]), "whole floats": np.array([1.0, 2.0, 3.0]),
    "strings": np.array(["a", "b", "a"], dtype=object), "strings with nulls": np.array(["a", None, np.nan], dtype=object),
    "objects": np.array([1, "b", None], dtype=object),
}


@pytest.mark.parametrize("dtype", ["int64", "float32", "float64", "string", "bool"])
@pytest.mark.parametrize("name", sorted(CAST_INPUTS))
def test_cast_array_is_cast_to_spec_or_declines(dtype, name):
    """The pass's numpy cast of a column: where it casts, the same dtype and values as `cast_to_spec` (which defines
    them); where it declines (None), `cast_to_spec` decides (a nullable integer, a refused inf, ...)."""
    from feature_platform.compute.chunks import cast_array, cast_to_spec

    spec = replace(SPEC, fields=[Field("f", dtype)], aggregation=replace(SPEC.aggregation, aggs=[Agg("f", "count", "x")]))
    values = CAST_INPUTS[name]
    got = cast_array(values.copy(), dtype)
    if got is None:
        return
    want = cast_to_spec(spec, pd.DataFrame({SPEC.entity.join_key: np.arange(3), "f": values}))["f"]
    assert isinstance(want.dtype, np.dtype) and got.dtype == want.dtype
    assert [v if v == v else "nan" for v in got.tolist()] == [v if v == v else "nan" for v in want.tolist()]
    if dtype == "string":
        assert [v is None for v in got.tolist()] == [v is None for v in want.tolist()]


INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@st.composite
def integer_keys(draw):
    """Integer keys of any width: spans narrow (ranked by a table) and wide (pandas' hash table), at the dtype's ends."""
    dtype = np.dtype(draw(st.sampled_from(INT_DTYPES)))
    info = np.iinfo(dtype)
    base = draw(st.sampled_from([int(info.min), int(info.max), 0, -5 if dtype.kind == "i" else 5]))
    spread = draw(st.sampled_from([3, 300, 2**17, 2**40]))
    offsets = draw(st.lists(st.integers(0, spread), max_size=40))
    values = [min(max(base + o if base <= 0 else base - o, int(info.min)), int(info.max)) for o in offsets]
    return pd.Series(np.array(values, dtype=dtype))


@settings(max_examples=400, deadline=None)
@given(keys=integer_keys())
def test_entity_keys_rank_as_pandas_sorted_factorize(keys):
    """The events' key codes and key values are `pd.factorize(sort=True)`'s, whichever way they are found."""
    from feature_platform.compute.rolling_window import factorize_sorted

    codes, uniques = factorize_sorted(keys)
    want_codes, want_uniques = pd.factorize(keys, sort=True)
    assert codes.tolist() == want_codes.tolist()
    assert uniques.dtype == want_uniques.dtype and uniques.tolist() == want_uniques.tolist()
