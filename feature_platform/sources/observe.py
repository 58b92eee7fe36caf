"""What a source holds, day by day: the observation behind the raw assets and the completeness check.

A day is *present* when the source covers it: for Parquet, a day some file has rows on, every day between a
file's first and last row (a quiet day inside a file's range is real), and the day of a hive-style
`date=YYYY-MM-DD/` directory; for a PostgreSQL table or query, every day from its first row to its newest
(one continuous log), whatever part of it a range reads. Days before the source's declared `start` hold nothing
by definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_platform.sources.rows import SourceRows

_HIVE_DAY = re.compile(r"(?:^|/)[A-Za-z_]+=(\d{4}-\d{2}-\d{2})(?:/|$)")


@dataclass(frozen=True)
class Observation:
    """What the source held in the observed range: rows per day with rows, the days present, the newest time
    in the range, and the time of the source's earliest row at all (where its history begins)."""

    rows_by_day: dict[date, int] = field(default_factory=dict)
    present: frozenset[date] = frozenset()
    newest: datetime | None = None
    earliest: datetime | None = None

    @property
    def rows(self) -> int:
        return sum(self.rows_by_day.values())


def observe(reader: SourceRows, start: datetime | None = None, end: datetime | None = None, *,
            counts: bool = True) -> Observation:
    """The days of `[start, end)` (default: everything) the source covers; reads only the time column. Without
    `counts`, only `present` and `earliest` are filled (`rows_by_day` empty, `newest` None): a Parquet file's
    days then come from its row-group statistics where it has them, no row is read."""
    start = start or datetime(1970, 1, 1, tzinfo=timezone.utc)
    end = end or datetime(2200, 1, 1, tzinfo=timezone.utc)
    if hasattr(reader, "files"):
        return _observe_parquet(reader, start, end, counts)
    return _observe_postgres(reader, start, end)


def missing_days(observation: Observation, needed: list[date], history_start: date | None) -> list[date]:
    """The days of `needed` the source does not cover; days before `history_start` (the source's declared
    `start`, else its first day) are never missing: no data is real there. A source with no data at all
    (`history_start` None) misses every day."""
    return [d for d in needed if d not in observation.present and (history_start is None or d >= history_start)]


def history_start(observation: Observation, declared: date | None) -> date | None:
    """Where the source's history begins: its declared `start`, else the day of its earliest row."""
    if declared is not None:
        return declared
    return observation.earliest.date() if observation.earliest is not None else None


def check_window_days(reader: SourceRows, view: str, declared: date | None, lookback_days: int,
                      first: date, last: date) -> None:
    """Refuse partitions `first..last` of `view` (each reading its day and the `lookback_days` before it) when
    a day they read is missing from the source: `MissingSourceDaysError` naming the view, the first such
    partition and the missing days, before anything is read or written."""
    from feature_platform.errors import MissingSourceDaysError

    lo = first - timedelta(days=lookback_days)
    start = datetime.combine(lo, datetime.min.time(), tzinfo=timezone.utc)
    end = datetime.combine(last, datetime.min.time(), tzinfo=timezone.utc) + timedelta(days=1)
    seen = observe(reader, start, end, counts=False)  # which days, not how many rows
    begins = history_start(seen, declared)
    missing = missing_days(seen, _days(lo, last), begins)
    if not missing:
        return
    partition = max(first, missing[0])  # the first partition whose window reads a missing day
    reads = [d for d in missing if d <= partition + timedelta(days=lookback_days)] or missing
    shown = ", ".join(d.isoformat() for d in reads[:10]) + (f" and {len(reads) - 10} more" if len(reads) > 10 else "")
    where = (f"its history starts {begins}" + (" (declared start)" if declared else " (its first row)")
             if begins else "it holds no rows")
    raise MissingSourceDaysError(
        f"feature view {view!r} partition {partition}: its window reads raw days the {reader.label} "
        f"{reader.location} does not hold: {shown} ({where}); nothing was computed. Load those days (or declare "
        f"the source's start if there is no data before it), then run it again")


def _observe_parquet(reader, start: datetime, end: datetime, counts: bool) -> Observation:
    rows: dict[date, int] = {}
    present: set[date] = set()
    newest = earliest = None
    lo, hi = start.date(), (end - timedelta(microseconds=1)).date()
    for fragment in reader.files():
        hive = _HIVE_DAY.search(fragment.path)
        if hive and lo <= (day := date.fromisoformat(hive.group(1))) <= hi:
            present.add(day)
        # A file's days with rows lie within its first and last row's (below): without counts, no row is read.
        times = reader.read_times([fragment], start, end) if counts else ()
        if len(times):
            days = pc.cast(pc.floor_temporal(times, unit="day"), pa.timestamp("us", tz="UTC"))
            for item in pc.value_counts(days).to_pylist():
                rows[item["values"].date()] = rows.get(item["values"].date(), 0) + item["counts"]
            last = pc.max(times).as_py()
            newest = last if newest is None or last > newest else newest
        # The file covers every day from its first row to its last, whatever part of it the range reads: a
        # quiet stretch inside a file is real, not missing.
        span = reader.time_range(fragment)
        if span is not None:
            present.update(d for d in _days(span[0].date(), span[1].date()) if lo <= d <= hi)
            earliest = span[0] if earliest is None or span[0] < earliest else earliest
    return Observation(dict(sorted(rows.items())), frozenset(present), newest, earliest)


def _observe_postgres(reader, start: datetime, end: datetime) -> Observation:
    counts = reader.rows_by_day(start, end)
    first, last = reader.time_range()  # the whole log's: a quiet stretch inside it is real, not missing
    if first is None:
        return Observation()
    lo, hi = start.date(), (end - timedelta(microseconds=1)).date()
    rows = {d: int(n) for d, n in zip(counts["day"], counts["rows"])}
    present = frozenset(d for d in _days(first.date(), last.date()) if lo <= d <= hi)
    newest = pd.Timestamp(counts["newest"].max()).to_pydatetime() if len(counts) else None
    return Observation(rows, present, newest, first)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
