"""Sliding-window aggregation of a raw event log, as of the end of a partition day (pure pandas).

No `now()` anywhere: the window of day D is `[D+1 - window, D+1)`, so backfills and re-runs
compute exactly what a run on the day itself would have computed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from feature_platform.compute import rolling_window
from feature_platform.compute.chunks import DayChunk, cast_to_spec, empty_chunk, may_overflow, overflow_error
from feature_platform.dtypes import fits_int64
from feature_platform.spec import Agg, FeatureViewSpec
from feature_platform.vocabulary import EVENT_TIMESTAMP, day_end


def raw_range_for(spec: FeatureViewSpec, first: date, last: date) -> tuple[datetime, datetime]:
    """The raw-event time range needed to compute days `first..last` (one extra day for closing rows)."""
    window = spec.aggregation.window
    return day_end(first) - window - timedelta(days=1), day_end(last)


def aggregate_day(spec: FeatureViewSpec, raw: pd.DataFrame, day: date) -> pd.DataFrame:
    """Feature rows of `spec` for partition `day` from `raw` events (any superset of the needed range).

    Returns one row per entity with an event in the window, plus a closing row for each entity whose
    window was non-empty the day before and is empty now. Columns: join key, features (spec dtypes),
    event_timestamp (tz-aware UTC). Sorted by join key. An integer sum that does not fit its int64 feature
    raises `AggregationOverflowError` (pandas' own int64 sum would wrap around).
    """
    agg = spec.aggregation
    key = spec.entity.join_key
    end = pd.Timestamp(day_end(day))
    start = end - pd.Timedelta(agg.window)
    ts = raw[agg.timestamp_column]
    current = raw[(ts >= start) & (ts < end)]
    previous_keys = raw.loc[(ts >= start - pd.Timedelta(days=1)) & (ts < end - pd.Timedelta(days=1)), key].unique()

    features = _aggregate(current, key, agg.aggs)
    _check_fits(spec, day, features)
    closing_keys = np.setdiff1d(previous_keys, features[key].to_numpy())
    closing = pd.DataFrame({key: closing_keys})
    for a in agg.aggs:
        closing[a.feature] = a.empty_value
    parts = [cast_to_spec(spec, features)] + ([cast_to_spec(spec, closing)] if len(closing) else [])
    out = pd.concat(parts, ignore_index=True).sort_values(key, kind="stable").reset_index(drop=True)
    out[EVENT_TIMESTAMP] = end
    return out


def prepare(spec: FeatureViewSpec, raw: pd.DataFrame, days: Sequence[date], *,
            consume: bool = False) -> pd.DataFrame | rolling_window.Events:
    """What `aggregate_chunk(spec, ..., days)` needs of `raw`: for the one-pass aggregation, its events as arrays
    (`rolling_window.Events`), so the raw frame can be freed before the pass runs; else `raw` itself. With
    `consume` (the caller hands `raw` over), its columns are deleted as their events are made."""
    return rolling_window.events_of(spec, raw, days, consume=consume) if rolling_window.supports(spec) else raw


def aggregate_chunk(spec: FeatureViewSpec, raw: pd.DataFrame | rolling_window.Events, days: Sequence[date]) -> DayChunk:
    """`aggregate_day` for several days over one raw frame (or what `prepare` made of it): in one vectorized pass
    for windows of whole days (`rolling_window`), else day by day."""
    if rolling_window.supports(spec):
        return rolling_window.aggregate_chunk(spec, raw, days)
    frames = list(_aggregate_each_day(spec, raw, days))
    if not frames:
        return empty_chunk()
    bounds = np.cumsum([0, *(len(f) for _, f in frames)])
    return DayChunk([d for d, _ in frames], pd.concat([f for _, f in frames], ignore_index=True), bounds)


def aggregate_days(spec: FeatureViewSpec, raw: pd.DataFrame, days: Sequence[date]) -> Iterator[tuple[date, pd.DataFrame]]:
    """`(day, aggregate_day(spec, raw, day))` for each of `days`, computed as one chunk."""
    yield from aggregate_chunk(spec, raw, days)


def _aggregate_each_day(spec: FeatureViewSpec, raw: pd.DataFrame, days: Sequence[date]) -> Iterator[tuple[date, pd.DataFrame]]:
    agg = spec.aggregation
    raw = raw.sort_values(agg.timestamp_column, kind="stable")
    ts = raw[agg.timestamp_column]
    for day in days:
        lo, hi = raw_range_for(spec, day, day)
        i, j = ts.searchsorted(pd.Timestamp(lo), "left"), ts.searchsorted(pd.Timestamp(hi), "left")
        yield day, aggregate_day(spec, raw.iloc[i:j], day)


def _aggregate(events: pd.DataFrame, key: str, aggs: Sequence[Agg]) -> pd.DataFrame:
    keys = np.sort(events[key].unique())
    out = pd.DataFrame({key: keys})
    grouped = events.groupby(key, sort=True)
    for a in aggs:
        if a.fn == "mode":
            values = _mode(events, key, a.column).reindex(keys).fillna(a.empty_value)
        elif a.fn == "count_distinct":
            values = grouped[a.column].nunique()
        elif a.fn == "count":
            values = grouped[a.column].count()
        elif a.fn == "sum" and events[a.column].dtype.kind in "iu" and may_overflow(events[a.column].to_numpy()):
            # pandas' int64 sum wraps around silently: add Python ints (exact), checked by `_check_fits`
            values = events[a.column].astype(object).groupby(events[key], sort=True).sum()
        else:
            values = getattr(grouped[a.column], a.fn)()
        out[a.feature] = values.reindex(keys).to_numpy()
    return out


def _check_fits(spec: FeatureViewSpec, day: date, features: pd.DataFrame) -> None:
    """Raise `AggregationOverflowError` if an exact (Python int) sum of an int64 feature does not fit int64."""
    key = spec.entity.join_key
    sums = {a.feature for a in spec.aggregation.aggs if a.fn == "sum"}
    exact = [f.name for f in spec.fields if f.name in sums and f.dtype == "int64" and features[f.name].dtype == object]
    if not exact:
        return
    outside = pd.DataFrame({name: [isinstance(v, int) and not fits_int64(v) for v in features[name]]
                            for name in exact})
    if outside.to_numpy().any():
        row = int(outside.any(axis=1).to_numpy().argmax())  # rows are sorted by key
        name = next(n for n in exact if outside.at[row, n])
        entity = features[key].iloc[row]
        raise overflow_error(spec, day, name, entity.item() if isinstance(entity, np.generic) else entity,
                             int(features[name].iloc[row]), int(outside.to_numpy().sum()))


def _mode(events: pd.DataFrame, key: str, column: str) -> pd.Series:
    """Most frequent non-null value per key; ties go to the smallest value."""
    counts = events.dropna(subset=[column]).groupby([key, column], sort=False).size().reset_index(name="_n")
    counts = counts.sort_values([key, "_n", column], ascending=[True, False, True], kind="stable")
    first = counts.drop_duplicates(key, keep="first")
    return first.set_index(key)[column]
