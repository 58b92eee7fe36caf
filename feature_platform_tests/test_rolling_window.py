"""The one-pass rolling aggregation equals `aggregate_day` for every day (the definition), on
hypothesis-generated event logs with gaps, duplicates, nulls, ties and events outside the range."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform.compute.rolling_window import aggregate_chunk
from feature_platform.compute.window_aggregate import aggregate_day
from feature_platform.demo.generator import generate_day
from feature_platform.spec import Agg, Field
from feature_platform.specs.user_activity import SPEC

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
