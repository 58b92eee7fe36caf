"""Pushed `user_realtime_events` batches for the push tests, as producers send them."""

from __future__ import annotations

import pandas as pd


def event_batch(rows: list[tuple], now: pd.Timestamp) -> pd.DataFrame:
    """(user_id, seconds_ago, messages, tokens, minutes_ago) rows, event times relative to `now`."""
    return pd.DataFrame({
        "user_id": [r[0] for r in rows],
        "event_timestamp": [(now - pd.Timedelta(seconds=r[1])).isoformat() for r in rows],
        "current_session_messages": [r[2] for r in rows],
        "current_session_tokens": [r[3] for r in rows],
        "last_active_minutes_ago": [r[4] for r in rows],
    })
