"""Many partition days of a sliding-window aggregation in one vectorized pass (numpy).

`aggregate_day` re-aggregates the whole window for every partition, so a year of a 7-day view reads
and groups every event 7 times. Here each event is aggregated once per (entity, day) and each daily
partial is then added into the `window` partitions that contain it. The result is `aggregate_day`'s
for every day (property-tested against it), including the closing rows, dtypes and row order.

The grid: for each entity, every day D in the union of `[d, d + window]` over its event days d.
Those are exactly the days with a non-empty window (`d <= D < d + window`) plus the closing day
after each run of activity (`D = d + window` with nothing newer), and each key's days are
contiguous in it, so "day d + i of key k" is "row of (k, d) + i".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from feature_platform.compute.chunks import DayChunk, cast_to_spec, empty_chunk, may_overflow, overflow_error
from feature_platform.errors import AggregationOverflowError
from feature_platform.spec import FeatureViewSpec
from feature_platform.vocabulary import EVENT_TIMESTAMP, day_end

_EPOCH = date(1970, 1, 1)


def supports(spec: FeatureViewSpec) -> bool:
    """Whether the vectorized pass applies: windows of whole UTC days (every spec we ship)."""
    window = spec.aggregation.window
    return window >= timedelta(days=1) and window % timedelta(days=1) == timedelta(0)


def day_numbers(ts: pd.Series) -> np.ndarray:
    """UTC day of each timestamp as days since 1970-01-01 (NaT -> int64 min)."""
    values = ts.dt.tz_convert("UTC").dt.tz_localize(None) if ts.dt.tz is not None else ts
    return values.to_numpy().astype("datetime64[D]").astype(np.int64)


def _sorted_unique(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, first, group): `codes[order]` is sorted, `first` indexes each distinct code's first
    position in it, `group[i]` is event i's distinct-code number. (numpy's `unique` hashes: slower.)"""
    order = np.argsort(codes, kind="stable")
    ranked = codes[order]
    new = np.diff(ranked, prepend=ranked[:1] - 1) != 0 if len(ranked) else np.zeros(0, dtype=bool)
    group = np.empty(len(codes), dtype=np.int64)
    group[order] = np.cumsum(new) - 1
    return order, np.flatnonzero(new), group


class _Grid:
    """Sorted (group, day) rows: per group, the union of [d, d + reach] over its days d."""

    def __init__(self, pairs: np.ndarray, reach: int, span: int):
        """`pairs`: sorted distinct `group * span + day` codes."""
        self.span = span
        g, d = pairs // span, pairs % span
        new_run = np.ones(len(pairs), dtype=bool)
        new_run[1:] = (g[1:] != g[:-1]) | (d[1:] > d[:-1] + reach + 1)
        starts = np.flatnonzero(new_run)
        ends = np.append(starts[1:], len(pairs))[: len(starts)] - 1
        lengths = d[ends] + reach - d[starts] + 1
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        self.group = np.repeat(g[starts], lengths)
        self.day = np.repeat(d[starts], lengths) + offsets
        self.code = self.group * span + self.day
        self.at = np.searchsorted(self.code, pairs)  # the row of each input pair

    def __len__(self) -> int:
        return len(self.code)

    def index(self, group: np.ndarray, day: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.code, group * self.span + day)

    def spread(self, weights: np.ndarray, width: int) -> np.ndarray:
        """Per grid row, the sum of the input pairs' `weights` among the `width` rows up to it: a day's
        partial summed into each window that holds it. (g, d + i) is row (g, d) + i."""
        if weights.dtype.kind == "f":  # add each partial in turn: no running-sum rounding drift
            out = np.zeros(len(self), dtype=np.float64)
            for i in range(width):
                out[self.at + i] += weights  # rows are unique, so += is safe
            return out
        diff = np.zeros(len(self) + 1, dtype=np.int64)  # integers: enter, leave, running sum (exact)
        diff[self.at] += weights
        diff[self.at + width] -= weights
        return np.cumsum(diff[:-1])


# Up to this many distinct values, `mode` counts each value on the grid directly (fast); above, it
# works on (entity, value) pairs (memory bounded by the pairs, not by entities x values).
MODE_DIRECT_MAX_VALUES = 64


# Events aggregated at once, at most (about: an entity's events are never split). A chunk with more is
# aggregated a range of entities at a time: every aggregation is per entity, so the ranges' rows, put back in
# (day, key) order, are the chunk's; the pass's working memory (~400 bytes per event) is bounded by a range.
SHARD_EVENTS = 250_000


def aggregate_chunk(spec: FeatureViewSpec, raw: pd.DataFrame, days: Sequence[date]) -> DayChunk:
    """The rows of `aggregate_day(spec, raw, day)` for each of `days`, in one frame, in one pass over `raw`
    (a range of entities at a time above `SHARD_EVENTS` events)."""
    if len(raw) > SHARD_EVENTS and days:
        codes, _ = pd.factorize(raw[spec.entity.join_key], sort=True)
        per_key = np.bincount(codes[codes >= 0])
        # Shard boundaries (in sorted key codes) every ~SHARD_EVENTS events.
        cuts = np.searchsorted(np.cumsum(per_key), np.arange(SHARD_EVENTS, len(raw), SHARD_EVENTS), side="left") + 1
        cuts = np.unique(np.clip(cuts, 1, len(per_key)))
        bounds = [0, *cuts.tolist()] + ([len(per_key)] if not len(cuts) or cuts[-1] != len(per_key) else [])
        if len(bounds) > 2:
            try:
                parts = [_aggregate_chunk(spec, raw[(codes >= lo) & (codes < hi)], days)
                         for lo, hi in zip(bounds[:-1], bounds[1:])]
            except AggregationOverflowError:
                pass  # the first overflow in (day, key) order over all entities: the one-pass error, below
            else:
                return _merge(parts)
    return _aggregate_chunk(spec, raw, days)


def _merge(parts: list[DayChunk]) -> DayChunk:
    """The chunks of consecutive entity ranges (same days) as one: each day's rows, range after range."""
    offsets = np.cumsum([0, *(len(p.frame) for p in parts)])
    take = np.concatenate([np.arange(off + p.bounds[i], off + p.bounds[i + 1])
                           for i in range(len(parts[0].days)) for p, off in zip(parts, offsets)])
    columns = {}
    for name in parts[0].frame.columns:  # column by column: one column's copies at a time
        column = pd.concat([p.frame[name] for p in parts], ignore_index=True)
        columns[name] = column.take(take).reset_index(drop=True)
    bounds = np.cumsum([0, *(sum(int(p.bounds[i + 1] - p.bounds[i]) for p in parts) for i in range(len(parts[0].days)))])
    return DayChunk(parts[0].days, pd.DataFrame(columns), bounds)


def _aggregate_chunk(spec: FeatureViewSpec, raw: pd.DataFrame, days: Sequence[date]) -> DayChunk:
    agg = spec.aggregation
    key = spec.entity.join_key
    width = agg.window.days
    wanted = sorted(set(days))
    lo = (wanted[0] - _EPOCH).days - width  # day 0: the day before the first window, for closing rows
    last = (wanted[-1] - _EPOCH).days - lo
    span = last + width + 2  # room for day + width past the last day, per key

    if not wanted:
        return empty_chunk()
    eday = day_numbers(raw[agg.timestamp_column]) - lo
    keys, key_values = pd.factorize(raw[key], sort=True)
    keep = (eday >= 0) & (eday <= last) & (keys >= 0)
    events = raw.loc[keep] if not keep.all() else raw
    k, d = keys[keep].astype(np.int64), eday[keep]

    # Daily partials: one per (key, day) with events; `partial[i]` is event i's.
    order, first, partial = _sorted_unique(k * span + d)
    grid = _Grid((k * span + d)[order][first], reach=width, span=span)
    n_partials = len(first)

    def window_sum(values: np.ndarray) -> np.ndarray:
        if values.dtype.kind == "f":
            daily = np.bincount(partial, weights=values, minlength=n_partials)
        else:  # exact for any int64, unlike bincount's float weights (modulo 2**64: see `exact_sum`)
            daily = np.add.reduceat(values[order], first) if n_partials else np.zeros(0, dtype=np.int64)
        return grid.spread(daily, width)

    def exact_sum(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """int64 window sums wrap around silently. Exactly, as `high * 2**32 + low` (`0 <= low < 2**32`): the
        values' signed high and unsigned low 32 bits are summed apart, which cannot wrap below 2**31 events."""
        high, low = window_sum(values >> 32), window_sum(values & 0xFFFFFFFF)
        return high + (low >> 32), low & 0xFFFFFFFF

    n_events = grid.spread(np.bincount(partial, minlength=n_partials), width)
    columns: dict[str, np.ndarray] = {}
    overflows: dict[str, np.ndarray] = {}  # int64 feature -> its grid rows whose exact sum does not fit
    exact: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for a in agg.aggs:
        column = events[a.column]
        if a.fn in ("count", "mean"):  # counts (and count_distinct) are at most the events: they never overflow
            count = window_sum(column.notna().to_numpy().astype(np.int64))
        if a.fn == "count":
            columns[a.feature] = count
        elif a.fn in ("sum", "mean"):
            values = _summable(column)
            if values.dtype.kind == "f" or not may_overflow(values):
                total = window_sum(values)
            else:
                high, low = exact[a.feature] = exact_sum(values)
                if a.fn == "sum" and spec.field(a.feature).dtype == "int64":
                    total = (high << 32) | low  # the exact sum where it fits
                    overflows[a.feature] = (high < -(2**31)) | (high >= 2**31)
                else:  # a mean or a float feature: the exact sum, rounded once to float64
                    total = high.astype(np.float64) * 2.0**32 + low
            if a.fn == "sum":
                columns[a.feature] = total
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    columns[a.feature] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        elif a.fn == "count_distinct":
            columns[a.feature] = _count_distinct(grid, k, d, grid.at[partial], column, width)
        elif a.fn == "mode":
            columns[a.feature] = _mode(grid, k, d, partial, n_partials, column, width, a.empty_value)
        else:
            columns[a.feature] = _extreme(grid, partial, n_partials, column, a.fn, width)

    # Grid rows of the wanted days, ordered by day then key (the grid is key-major; a stable sort of
    # small integers is a radix sort in numpy).
    wanted_offsets = np.array([(x - _EPOCH).days - lo for x in wanted])
    rows = np.flatnonzero(np.isin(grid.day, wanted_offsets))
    row_day = grid.day[rows].astype(np.int16 if span < 2**15 else np.int64)
    pick = rows[np.argsort(row_day, kind="stable")]
    closing = n_events[pick] == 0
    if overflows:
        _check_fits(spec, wanted, wanted_offsets, grid, pick, key_values, overflows, exact)
    frame = pd.DataFrame({key: key_values.take(grid.group[pick])})
    for a in agg.aggs:
        frame[a.feature] = _fill(columns[a.feature][pick], closing, a.empty_value)
    bounds = np.searchsorted(grid.day[pick], np.append(wanted_offsets, wanted_offsets[-1] + 1))
    ends = pd.DatetimeIndex([day_end(x) for x in wanted]).as_unit("us")
    # One frame built at once (consolidated blocks), so each day's rows are a view of it, not a copy.
    typed = dict(cast_to_spec(spec, frame, copy=False).items())
    typed[EVENT_TIMESTAMP] = pd.Series(ends.repeat(np.diff(bounds)))
    return DayChunk(wanted, pd.DataFrame(typed), bounds)


def _check_fits(spec: FeatureViewSpec, wanted, offsets, grid: _Grid, pick, key_values, overflows, exact) -> None:
    """Raise `AggregationOverflowError` for the first wanted row (by day, then key) whose exact sum of an
    int64 feature (spec order) does not fit int64."""
    names = [f.name for f in spec.fields if f.name in overflows]
    bad = np.column_stack([overflows[name][pick] for name in names])
    if not bad.any():
        return
    i = int(bad.any(axis=1).argmax())
    j = int(bad[i].argmax())
    row, name = pick[i], names[j]
    day = wanted[int(np.searchsorted(offsets, grid.day[row]))]
    day_rows = grid.day[pick] == grid.day[row]
    high, low = exact[name]
    entity = key_values[grid.group[row]]
    raise overflow_error(spec, day, name, entity.item() if isinstance(entity, np.generic) else entity,
                         int(high[row]) * 2**32 + int(low[row]), int(bad[day_rows].sum()))


def _summable(column: pd.Series) -> np.ndarray:
    """Values to add up as pandas' `sum` does: nulls count as 0, booleans as 0/1."""
    values = column.to_numpy()
    if values.dtype.kind == "f":
        return np.where(np.isnan(values), 0.0, values)
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    return pd.to_numeric(column).fillna(0).to_numpy(dtype=np.float64)


def _fill(values: np.ndarray, mask: np.ndarray, empty) -> np.ndarray:
    """`values` with the closing rows (`mask`) set to the feature's empty value."""
    if not mask.any():
        return values
    if empty is None:
        if values.dtype.kind in "iu":  # nullable, not float64: that would round integers above 2**53
            return pd.arrays.IntegerArray(values.astype(np.int64), mask.copy())
        empty = np.nan if values.dtype.kind == "f" else None
    elif values.dtype != object and isinstance(empty, str):
        values = values.astype(object)
    values[mask] = empty
    return values


def _pair_codes(k: np.ndarray, v: np.ndarray, n_values: int, span: int) -> np.ndarray | None:
    """`(k * n_values + v) * span + day`-style codes when they fit in int64, else None."""
    if (int(k.max(initial=0)) + 1) * max(n_values, 1) * span < 2**62:
        return k * n_values + v
    return None


def _count_distinct(grid: _Grid, k, d, row, column: pd.Series, width: int) -> np.ndarray:
    """Distinct non-null values per window: a value counts from its first day in the window until
    `width` days after its last, so repeats within the window are counted once. `row[i]`: the grid
    row of event i's (key, day); its key's later days follow it."""
    values, uniques = pd.factorize(column, sort=False)
    ok = values >= 0
    k, d, v, row = k[ok], d[ok], values[ok].astype(np.int64), row[ok]
    pair = _pair_codes(k, v, len(uniques), grid.span)
    order = np.argsort(pair * grid.span + d, kind="stable") if pair is not None else np.lexsort((d, v, k))
    k, d, v, row = k[order], d[order], v[order], row[order]
    same_pair = np.zeros(len(k), dtype=bool)
    same_pair[1:] = (k[1:] == k[:-1]) & (v[1:] == v[:-1])
    repeat = np.zeros(len(k), dtype=bool)
    repeat[1:] = same_pair[1:] & (d[1:] == d[:-1])
    d, row, same_pair = d[~repeat], row[~repeat], same_pair[~repeat]
    prev_d = np.concatenate(([0], d[:-1]))
    starts = np.where(same_pair, np.maximum(d, prev_d + width), d)
    counts = np.bincount(row + (starts - d), minlength=len(grid) + 1)[: len(grid)]
    counts = counts - np.bincount(row + width, minlength=len(grid) + 1)[: len(grid)]
    return np.cumsum(counts)


def _mode(grid: _Grid, k, d, partial, n_partials: int, column: pd.Series, width: int, empty) -> np.ndarray:
    """Most frequent non-null value per window, ties to the smallest; `empty` where there is none."""
    values, uniques = pd.factorize(column, sort=True)
    out = np.full(len(grid), empty, dtype=object)
    n_values = len(uniques)
    if n_values == 0:
        return out
    labels = np.asarray(uniques, dtype=object)
    if n_values <= MODE_DIRECT_MAX_VALUES:
        best_count = np.zeros(len(grid), dtype=np.int64)
        best = np.full(len(grid), -1, dtype=np.int64)
        for v in range(n_values):  # ascending values: a tie keeps the smaller one (strict >)
            count = grid.spread(np.bincount(partial[values == v], minlength=n_partials), width)
            better = count > best_count
            best_count[better], best[better] = count[better], v
    else:
        ok = values >= 0
        k, d, v = k[ok], d[ok], values[ok].astype(np.int64)
        pair = _pair_codes(k, v, n_values, grid.span)
        if pair is None:
            raise ValueError("mode over this many entities x values does not fit int64 codes; use fewer days per pass")
        order, first, _ = _sorted_unique(pair * grid.span + d)
        triples = (pair * grid.span + d)[order][first]
        counts = np.diff(np.append(first, len(order)))
        pairs = _Grid(triples, reach=width, span=grid.span)
        in_window = pairs.spread(counts.astype(np.int64), width)
        live = in_window > 0
        pk, pv = pairs.group[live] // n_values, pairs.group[live] % n_values
        score = in_window[live] * n_values + (n_values - 1 - pv)  # more rows first, then the smaller value
        top = np.full(len(grid), -1, dtype=np.int64)
        np.maximum.at(top, grid.index(pk, pairs.day[live]), score)
        best = np.where(top >= 0, n_values - 1 - top % n_values, -1)
    has = best >= 0
    out[has] = labels[best[has]]
    return out


def _extreme(grid: _Grid, partial, n_partials: int, column: pd.Series, fn: str, width: int) -> np.ndarray:
    """min / max: each day's extreme spread over the windows that hold it (nulls ignored)."""
    values = column.to_numpy()
    if values.dtype.kind == "i":  # integers (never null) stay int64: float64 would round them above 2**53
        values, empty = values.astype(np.int64), np.iinfo(np.int64).max if fn == "min" else np.iinfo(np.int64).min
        reduce = np.minimum if fn == "min" else np.maximum  # rows without an event are closing rows (refilled)
    else:
        values, empty = pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan), np.nan
        reduce = np.fmin if fn == "min" else np.fmax
    daily = np.full(n_partials, empty, dtype=values.dtype)
    reduce.at(daily, partial, values)
    out = np.full(len(grid), empty, dtype=values.dtype)
    for i in range(width):  # unique rows per step, so plain fancy indexing is safe
        out[grid.at + i] = reduce(out[grid.at + i], daily)
    return out
