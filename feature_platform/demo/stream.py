"""A seeded generator of realistic `user_realtime_events`: users in live sessions whose message and
token counts grow while they chat."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd


class SessionSimulator:
    """Tracks live sessions so consecutive events of a user are consistent (counts only grow)."""

    def __init__(self, n_users: int = 2000, seed: int = 7):
        self.rng = np.random.default_rng(seed)
        self.n_users = n_users
        self.messages = np.zeros(n_users + 1, dtype=np.int64)
        self.tokens = np.zeros(n_users + 1, dtype=np.int64)
        self.last_seen = np.full(n_users + 1, np.nan)

    def events(self, n: int, now: datetime | None = None) -> pd.DataFrame:
        now = now or datetime.now(timezone.utc)
        epoch_min = now.timestamp() / 60
        users = self.rng.integers(1, self.n_users + 1, n)
        new_session = self.rng.random(n) < 0.05
        self.messages[users[new_session]] = 0
        self.tokens[users[new_session]] = 0
        idle = np.where(np.isnan(self.last_seen[users]), 0.0, np.maximum(epoch_min - self.last_seen[users], 0.0))
        for user in users:  # sequential: one user may appear twice in a batch
            self.messages[user] += 1
            self.tokens[user] += int(self.rng.integers(20, 800))
        self.last_seen[users] = epoch_min
        return pd.DataFrame({
            "user_id": users.astype(np.int64),
            "event_timestamp": pd.Timestamp(now) - pd.to_timedelta(self.rng.integers(0, 500_000, n), unit="us"),
            "current_session_messages": self.messages[users],
            "current_session_tokens": self.tokens[users],
            "last_active_minutes_ago": np.round(idle, 3).astype(np.float32),
        })
