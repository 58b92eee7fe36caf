"""user_activity's aggregation against hand-computed values (definitions in shared/README)."""

from datetime import date

import pandas as pd
import pytest
from chat_activity.user_activity import SPEC

from feature_platform.compute.window_aggregate import aggregate_day, aggregate_days
from feature_platform_tests.helpers import sessions_frame

D = date(2026, 3, 10)  # window of D: [2026-03-04 00:00, 2026-03-11 00:00)

RAW = sessions_frame([
    # user 1: exactly at the window start (inside) and one microsecond before it (outside)
    (1, "a1", "2026-03-04T00:00:00Z", 100.0, 2, 1, "opus", 10),
    (1, "a0", "2026-03-03T23:59:59.999999Z", 999.0, 50, 50, "haiku", 999),
    # user 1: at D+1 00:00 belongs to the next day, not D
    (1, "a2", "2026-03-11T00:00:00Z", 777.0, 7, 7, "haiku", 777),
    (1, "a3", "2026-03-10T23:59:59.999999Z", 300.0, 4, 0, "sonnet", 30),
    # user 2: a tie between two models (2 sessions each): the alphabetically first wins
    (2, "b1", "2026-03-05T10:00:00Z", 60.0, 1, 0, "sonnet", 5),
    (2, "b2", "2026-03-06T10:00:00Z", 60.0, 1, 0, "haiku", 5),
    (2, "b3", "2026-03-07T10:00:00Z", 120.0, 1, 2, "sonnet", 5),
    (2, "b4", "2026-03-08T10:00:00Z", 120.0, 1, 0, "haiku", 5),
    # user 2: the same session logged twice counts once in sessions_7d
    (2, "b4", "2026-03-08T10:00:00Z", 120.0, 1, 0, "haiku", 5),
    # user 3: last session on 2026-03-03, in the window of D-1 only -> closing row on D
    (3, "c1", "2026-03-03T12:00:00Z", 50.0, 3, 1, "opus", 40),
    # user 4: sessions long before either window -> no row
    (4, "d1", "2026-02-01T12:00:00Z", 50.0, 3, 1, "opus", 40),
])


def by_user(df: pd.DataFrame) -> dict[int, dict]:
    return {int(r["user_id"]): r for r in df.to_dict("records")}


def test_window_boundaries_are_half_open_at_day_end():
    rows = by_user(aggregate_day(SPEC, RAW, D))
    u1 = rows[1]
    assert u1["sessions_7d"] == 2  # a1 (at start) + a3 (last microsecond); not a0, not a2
    assert u1["messages_sent_7d"] == 6
    assert u1["tools_used_7d"] == 1
    assert u1["total_tokens_7d"] == 40
    assert u1["avg_session_duration_sec"] == pytest.approx(200.0)
    assert u1["preferred_model"] == "opus"  # tie opus/sonnet 1-1 -> alphabetical


def test_mode_ties_go_to_alphabetically_first_and_distinct_sessions():
    u2 = by_user(aggregate_day(SPEC, RAW, D))[2]
    assert u2["preferred_model"] == "haiku"  # haiku 3 rows (b4 twice) vs sonnet 2
    assert u2["sessions_7d"] == 4  # b4 counted once


def test_exact_tie_prefers_alphabetical():
    raw = sessions_frame([(9, "x1", "2026-03-09T01:00:00Z", 1.0, 1, 0, "zeta", 1),
                          (9, "x2", "2026-03-09T02:00:00Z", 1.0, 1, 0, "alpha", 1)])
    assert aggregate_day(SPEC, raw, D)["preferred_model"].tolist() == ["alpha"]


def test_closing_row_when_window_just_emptied_and_no_row_for_idle_users():
    rows = by_user(aggregate_day(SPEC, RAW, D))
    assert 4 not in rows
    closing = rows[3]
    assert closing["sessions_7d"] == 0 and closing["messages_sent_7d"] == 0
    assert closing["tools_used_7d"] == 0 and closing["total_tokens_7d"] == 0
    assert pd.isna(closing["avg_session_duration_sec"])
    assert closing["preferred_model"] == "unknown"
    # the day after, user 3 was already empty in the previous window: no row at all
    assert 3 not in by_user(aggregate_day(SPEC, RAW, date(2026, 3, 11)))


def test_feature_timestamp_is_end_of_day_and_dtypes_follow_spec():
    out = aggregate_day(SPEC, RAW, D)
    assert (out["event_timestamp"] == pd.Timestamp("2026-03-11T00:00:00Z")).all()
    assert str(out["sessions_7d"].dtype) == "int64"
    assert str(out["avg_session_duration_sec"].dtype) == "float32"
    assert out["user_id"].tolist() == sorted(out["user_id"].tolist())


def test_several_partitions_match_single_day_computation():
    days = [date(2026, 3, d) for d in range(3, 13)]
    for day, frame in aggregate_days(SPEC, RAW, days):
        pd.testing.assert_frame_equal(frame, aggregate_day(SPEC, RAW, day))
    # user 1's a2 session (2026-03-11 00:00) shows up from partition 2026-03-11 on
    on_11 = by_user(aggregate_day(SPEC, RAW, date(2026, 3, 11)))[1]
    assert on_11["sessions_7d"] == 2  # a1 left the window (starts 03-05), a3 + a2 remain
    assert on_11["total_tokens_7d"] == 30 + 777


def test_empty_source_gives_empty_typed_frame():
    out = aggregate_day(SPEC, RAW.iloc[0:0], D)
    assert out.empty
    assert list(out.columns) == ["user_id", *SPEC.feature_names, "event_timestamp"]


def test_user_whose_models_are_all_null_prefers_unknown():
    raw = sessions_frame([(9, "x1", "2026-03-09T01:00:00Z", 1.0, 1, 0, None, 1)])
    assert aggregate_day(SPEC, raw, D)["preferred_model"].tolist() == ["unknown"]
