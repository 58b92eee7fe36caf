"""Synthetic churn labels for the demo: will an active user go quiet for the next week?"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd

from feature_platform.errors import SourceDataError
from feature_platform.runtime import Runtime


def churn_labels(runtime: Runtime, *, view: str, days: int = 28, horizon_days: int = 7, seed: int = 11,
                 end_day: date | None = None) -> pd.DataFrame:
    """One row per (user active in the week before day d, d) for the `days` latest days d that have a
    full horizon of data after them: `event_timestamp` at a seeded time on day d, and `churned_7d` = 1
    when the user has no session in the following `horizon_days` days.

    The latest usable day is derived from `view`'s newest offline partition, so labels never look
    past the data the features were computed from.
    """
    if end_day is None:
        partitions = runtime.offline.partitions(runtime.repo.view(view))
        if not partitions:
            raise SourceDataError(f"no partitions of {view!r} are materialized yet: materialize it before labelling")
        end_day = partitions[-1]
    last = end_day - timedelta(days=horizon_days)
    first = last - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc) - timedelta(days=7)
    stop = datetime(end_day.year, end_day.month, end_day.day, tzinfo=timezone.utc) + timedelta(days=1)
    sessions = runtime.read_source("sessions", start, stop)[["user_id", "event_timestamp"]]
    rng = np.random.default_rng(seed)
    frames = []
    for day in pd.date_range(first, last, freq="D"):
        moment = pd.Timestamp(day, tz="UTC") + pd.Timedelta(seconds=int(rng.integers(0, 86_400)))
        before = sessions[(sessions["event_timestamp"] > moment - pd.Timedelta(days=7))
                          & (sessions["event_timestamp"] <= moment)]["user_id"].unique()
        after = sessions[(sessions["event_timestamp"] > moment)
                         & (sessions["event_timestamp"] <= moment + pd.Timedelta(days=horizon_days))]["user_id"].unique()
        frames.append(pd.DataFrame({
            "user_id": np.sort(before).astype("int64"),
            "event_timestamp": moment,
            "churned_7d": (~np.isin(np.sort(before), after)).astype("int64"),
        }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        {"user_id": pd.Series(dtype="int64"), "event_timestamp": pd.Series(dtype="datetime64[us, UTC]"),
         "churned_7d": pd.Series(dtype="int64")})

