"""The low-latency path's row-by-row validation agrees with `prepare_batch` (Pandera) on every batch."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from chat_activity.user_realtime import SPEC
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_platform.push import SMALL_BATCH, prepare_batch, prepare_small_batch

NOW = pd.Timestamp("2026-06-01T12:00:00Z")

rows = st.lists(
    st.tuples(
        st.integers(1, 4),  # few users: duplicates of (user, time) happen
        st.sampled_from([-600, -60, 0, 299, 301, 3600]),  # seconds from now; > 300 is too far in the future
        st.integers(-2, 60),
        st.integers(-1, 10_000),
        st.sampled_from([0.0, 0.5, 12.25, -1.0, float("nan"), float("inf"), float("-inf")]),
    ),
    min_size=1, max_size=12,
)


def batch_of(items, tz: str) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": np.array([r[0] for r in items], dtype="int64"),
        "event_timestamp": pd.Series([NOW + pd.Timedelta(seconds=r[1]) for r in items]).dt.tz_convert(tz),
        "current_session_messages": np.array([r[2] for r in items], dtype="int64"),
        "current_session_tokens": np.array([r[3] for r in items], dtype="int64"),
        "last_active_minutes_ago": np.array([r[4] for r in items], dtype="float32"),
    })


def named_columns(reason: str) -> set[str]:
    return {part.split(":")[0] for part in reason.split("; ")}


@settings(max_examples=80, deadline=None)
@given(rows, st.sampled_from(["UTC", "Europe/Paris"]))
def test_row_validation_equals_the_pandera_path(items, tz):
    batch = batch_of(items, tz)
    fast = prepare_small_batch(SPEC, batch, now=NOW)
    slow = prepare_batch(SPEC, batch, now=NOW)
    assert fast is not None
    pd.testing.assert_frame_equal(fast.accepted, slow.accepted)
    assert fast.duplicates == slow.duplicates
    pd.testing.assert_frame_equal(fast.rejected.drop(columns="reason"), slow.rejected.drop(columns="reason"))
    # Same rows rejected for the same columns (value formatting of the message may differ).
    assert [named_columns(r) for r in fast.rejected["reason"]] == [named_columns(r) for r in slow.rejected["reason"]]
    for reason in fast.rejected["reason"]:
        assert re.search(r"missing|future|failed", reason), reason


def test_batches_it_cannot_judge_fall_back_to_pandera():
    typed = batch_of([(1, 0, 1, 1, 0.5)], "UTC")
    assert prepare_small_batch(SPEC, typed.assign(user_id=["1"]), now=NOW) is None  # text keys
    assert prepare_small_batch(SPEC, typed.assign(event_timestamp="2026-06-01T12:00:00Z"), now=NOW) is None
    assert prepare_small_batch(SPEC, typed.drop(columns="current_session_tokens"), now=NOW) is None
    big = pd.concat([typed] * (SMALL_BATCH + 1), ignore_index=True)
    assert prepare_small_batch(SPEC, big, now=NOW) is None
