"""A seeded generator of the raw sessions log, at any size.

Each day is generated independently from `(seed, day)`, so any partition can be regenerated alone
and always gives the same rows. Users have a stable activity level and favourite model, and some
go quiet for stretches of days, which exercises closing rows.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_platform.util.atomic import atomic_write

# The columns of the example repository's `sessions` source (examples/chat_activity/sources.py), in its order.
SCHEMA = pa.schema([
    ("user_id", pa.int64()), ("session_id", pa.string()), ("duration_sec", pa.float64()),
    ("message_count", pa.int64()), ("tool_invocations", pa.int64()), ("model", pa.string()), ("tokens", pa.int64()),
    ("event_timestamp", pa.timestamp("us", tz="UTC")),
])
MODELS = np.array(["claude-haiku", "claude-opus", "claude-sonnet", "gpt-4o", "llama-3"])
_QUIET_PERIOD_DAYS = 20


def _user_traits(n_users: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 0])
    activity = rng.gamma(shape=0.6, scale=0.8, size=n_users)  # expected sessions per active day
    favourite = rng.integers(0, len(MODELS), size=n_users)
    return activity, favourite


def generate_day(day: date, n_users: int, seed: int = 7) -> pd.DataFrame:
    """All sessions that ended on `day` (UTC), in the sessions schema, sorted by event time."""
    activity, favourite = _user_traits(n_users, seed)
    rng = np.random.default_rng([seed, day.toordinal()])
    # A user is quiet on a day when their phase in a 20-day cycle falls in a 9-day gap, so windows
    # empty out and refill regularly.
    phase = (np.arange(n_users) * 7919 + day.toordinal()) % _QUIET_PERIOD_DAYS
    quiet = (np.arange(n_users) % 4 == 0) & (phase < 9)
    counts = rng.poisson(np.where(quiet, 0.0, activity))
    users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), counts)
    n = len(users)
    midnight = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
    offsets_us = np.sort(rng.integers(0, 86_400_000_000, size=n))
    messages = rng.poisson(6, size=n) + 1
    model_idx = np.where(rng.random(n) < 0.7, favourite[users - 1], rng.integers(0, len(MODELS), size=n))
    frame = pd.DataFrame(
        {
            "user_id": users[np.argsort(rng.random(n))] if n else users,
            "session_id": [f"s-{day:%Y%m%d}-{i:07d}" for i in range(n)],
            "event_timestamp": midnight + pd.to_timedelta(offsets_us, unit="us"),
            "duration_sec": np.round(rng.exponential(420.0, size=n), 3),
            "message_count": messages.astype(np.int64),
            "tool_invocations": rng.poisson(1.5, size=n).astype(np.int64),
            "model": MODELS[model_idx],
            "tokens": (messages * rng.integers(80, 900, size=n)).astype(np.int64),
        }
    )
    return frame


def write_day(directory: Path, day: date, n_users: int, seed: int = 7) -> Path:
    """Generate `day` and write it atomically as `<directory>/<day>.parquet`; returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{day.isoformat()}.parquet"
    table = pa.Table.from_pandas(generate_day(day, n_users, seed), schema=SCHEMA, preserve_index=False)
    with atomic_write(path, durable=False) as tmp:  # hidden: a reader of the directory skips it while it is written
        pq.write_table(table, tmp)
    return path


def generate_sessions(settings, first: date, last: date, progress=None) -> list[Path]:
    """Generate the demo sessions of days `first..last` where the example's `sessions` source reads them
    (`$FEATURE_PLATFORM_HOME/raw/sessions`); refused when FEATURE_PLATFORM_SESSIONS_PATH points at real data."""
    from datetime import timedelta

    from feature_platform.errors import InvalidArgumentError

    if not settings.uses_generated_sessions:
        raise InvalidArgumentError(f"FEATURE_PLATFORM_SESSIONS_PATH is set ({settings.sessions_path}): the demo "
                                   "generates no data over yours")
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    paths = []
    for i, day in enumerate(days, 1):
        paths.append(write_day(settings.sessions_path, day, settings.demo_users, settings.demo_seed))
        if progress:
            progress(i, len(days), "raw_sessions", day.isoformat())
    return paths
