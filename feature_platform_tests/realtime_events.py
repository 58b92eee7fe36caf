"""Pushed `user_realtime_events` batches for the push tests, as producers send them."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd


class TestClock:
    """The push tests' "now": reset at each test's start (the `fresh_clock` fixture), so a long suite
    does not age their events past the lag bounds or the view's one-hour TTL."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> pd.Timestamp:
        self.now = pd.Timestamp(datetime.now(timezone.utc)).floor("s")
        return self.now


clock = TestClock()


def event_batch(rows: list[tuple], now: pd.Timestamp) -> pd.DataFrame:
    """(user_id, seconds_ago, messages, tokens, minutes_ago) rows, event times relative to `now`."""
    return pd.DataFrame({
        "user_id": [r[0] for r in rows],
        "event_timestamp": [(now - pd.Timedelta(seconds=r[1])).isoformat() for r in rows],
        "current_session_messages": [r[2] for r in rows],
        "current_session_tokens": [r[3] for r in rows],
        "last_active_minutes_ago": [r[4] for r in rows],
    })
