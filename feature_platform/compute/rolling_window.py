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

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_platform.compat.pandas_internals import frame_from_blocks
from feature_platform.compute.chunks import (
    DayChunk,
    cast_array,
    cast_to_spec,
    empty_chunk,
    may_overflow,
    overflow_error,
)
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


def _stable_order(codes: np.ndarray) -> np.ndarray:
    """`np.argsort(codes, kind="stable")` of int64 codes: for many non-negative codes below 2**48, a radix sort of
    16-bit digits, least significant first (numpy sorts 16-bit integers by radix: linear, ~3x faster than its
    comparison sort on a million unordered codes)."""
    if len(codes) < 2**16 or int(codes.min()) < 0 or int(codes.max()) >= 2**48:
        return np.argsort(codes, kind="stable")
    top, shift = int(codes.max()), 16
    order = np.argsort((codes & 0xFFFF).astype(np.uint16), kind="stable")
    while top >> shift:
        order = order[np.argsort(((codes[order] >> shift) & 0xFFFF).astype(np.uint16), kind="stable")]
        shift += 16
    return order


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
# A 16-day chunk of 1M events in 16 ranges instead of 4: the pass no longer sets the chunk's peak (+241 MB over
# the chunk's start at 250,000; now under the +223 MB of making the events), in the same time.
SHARD_EVENTS = 62_500
# Ranges of entities aggregated at once, each on its own thread: their numpy kernels release the GIL, so a chunk's
# pass uses the core the run's own thread leaves idle (a range run computing ahead, 4 runs of the year in one process,
# 4 interleaved pairs: 29.2-31.9 -> 27.3-30.3 s, peak RSS within the noise). Two ranges' working memory at once.
PASS_THREADS = min(2, os.cpu_count() or 1)


class Events:
    """The events of a chunk's days as numpy arrays, sorted by (key, day): the key's code `k` (its rank among
    the raw frame's keys), the day `d`, and per aggregation its input (`inputs`, by (function, column)). Built
    once per chunk (`events_of`), so a range of entities is a slice of them (no copy of the raw frame, strings
    factorized once) and each range's sort by (key, day) runs over sorted data. Once they are made, the raw
    frame can be freed; `aggregate_chunk` consumes them (`take`): their arrays are freed as soon as they are
    aggregated, before the chunk's columns are allocated, even while the caller still holds this object."""

    def __init__(self, days: list[date], k: np.ndarray, d: np.ndarray, inputs: dict, key_values):
        self.days, self.k, self.d, self.inputs, self.key_values = days, k, d, inputs, key_values

    def __len__(self) -> int:
        return len(self.k)

    def slice(self, start: int, stop: int) -> Events:
        cut = lambda value: value[start:stop] if isinstance(value, np.ndarray) else (value[0][start:stop], *value[1:])  # noqa: E731
        return Events(self.days, self.k[start:stop], self.d[start:stop], {n: cut(v) for n, v in self.inputs.items()},
                      self.key_values)

    def take(self, days: list[date]) -> Events:
        """These events, for aggregating `days` (the days they were made for), moved into a new object: this one
        is left empty, so a second use fails instead of computing from nothing."""
        if self.k is None:
            raise ValueError("these events were already aggregated: make them again with events_of")
        if days != self.days:
            raise ValueError(f"events made for days {self.days[0]}..{self.days[-1]} cannot compute {days[0]}..{days[-1]}")
        taken = Events(self.days, self.k, self.d, self.inputs, self.key_values)
        self.k = self.d = self.inputs = None
        return taken


def _offsets(spec: FeatureViewSpec, wanted: list[date]) -> tuple[int, int]:
    """(lo, last): day 0 of the pass (days since 1970-01-01: the day before the first window, for closing rows),
    and the last day with events that count, as an offset from it."""
    lo = (wanted[0] - _EPOCH).days - spec.aggregation.window.days
    return lo, (wanted[-1] - _EPOCH).days - lo


def events_of(spec: FeatureViewSpec, raw: pd.DataFrame, days: Sequence[date], *, consume: bool = False) -> Events:
    """The events of `raw` that `aggregate_chunk(spec, raw, days)` aggregates, as arrays (`Events`).

    With `consume`, each column is deleted from `raw` once its last array is made (the caller hands the frame
    over): a column held in its own block is freed then, so the raw frame shrinks while the events grow instead
    of both being held at the end. The inputs of functions of values (count_distinct, mode, min/max: a hash
    table or a sort while they are made) are made last, when the numeric columns are gone."""
    wanted = sorted(set(days))
    agg = spec.aggregation
    if not wanted:
        return Events([], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), {}, pd.Index([]))
    needs: dict[tuple[str, str], None] = {}
    for a in agg.aggs:
        kind = "count" if a.fn == "count" else "sum" if a.fn == "mean" else a.fn
        needs.update(dict.fromkeys([(kind, a.column)] + ([("count", a.column)] if a.fn == "mean" else [])))
    order = sorted(needs, key=lambda need: need[0] not in ("count", "sum"))  # stable: spec order within each
    last_use = {column: i for i, (_, column) in enumerate(order)}

    def done_with(column: str, at: int) -> None:
        if consume and last_use.get(column, -1) <= at and column in raw.columns:
            del raw[column]

    lo, last = _offsets(spec, wanted)
    eday = day_numbers(raw[agg.timestamp_column]) - lo
    keys, key_values = factorize_sorted(raw[spec.entity.join_key])
    done_with(agg.timestamp_column, -1)
    done_with(spec.entity.join_key, -1)
    keep = (eday >= 0) & (eday <= last) & (keys >= 0)
    kept = np.flatnonzero(keep)
    k, d = keys[kept].astype(np.int64, copy=False), eday[kept]
    # The kept events by (key, day): each range's sort by (key, day) is then over sorted data (cheap).
    index = kept[_stable_order(k * (last + 1) + d)]
    del k, d, kept, keep
    k, d = keys[index].astype(np.int64, copy=False), eday[index]
    del keys, eday
    pieces = _entity_ranges(k)
    inputs: dict[tuple[str, str], object] = {}
    for i, need in enumerate(order):
        inputs[need] = _input_of(need[0], raw[need[1]], index, pieces)
        done_with(need[1], i)
    return Events(wanted, k, d, {need: inputs[need] for need in needs}, key_values)


def factorize_sorted(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """`pd.factorize(column, sort=True)`. Integer keys spanning at most as many values as there are rows (ids, mostly)
    are ranked by a table of the span instead of a hash table (~6 vs ~50 ms for 860k rows of 100k keys)."""
    values = column.to_numpy() if isinstance(column.dtype, np.dtype) else None
    if values is None or values.dtype.kind not in "iu" or not len(values):
        return pd.factorize(column, sort=True)
    lo, hi = values.min(), values.max()
    if int(hi) - int(lo) >= max(len(values), 1 << 16):  # Python ints: no overflow at the ends of int64
        return pd.factorize(column, sort=True)
    # Offsets from the smallest as int64: exact (they are below the span) even where the dtype's own subtraction
    # would wrap (int8 from -128 to 127).
    offsets = values.astype(np.int64, copy=False) - np.int64(lo) if values.dtype.kind == "i" else (values - lo).astype(np.int64)
    present = np.zeros(int(hi) - int(lo) + 1, dtype=bool)
    present[offsets] = True
    rank = np.cumsum(present, dtype=np.int64) - 1
    return rank[offsets], pd.Index(np.flatnonzero(present).astype(values.dtype) + lo)


def _input_of(kind: str, column: pd.Series, index: np.ndarray, pieces: np.ndarray):
    """One aggregation's per-event input, of the events at `index` of the raw frame (`pieces`: its ranges of whole
    entities): a numpy array, or for the functions of values (count_distinct, mode, min/max) a tuple of it and what
    the function needs."""
    def events(values: np.ndarray) -> np.ndarray:
        return values[index]

    if kind == "count":
        return events(column.notna().to_numpy())
    if kind == "sum":
        return events(_summable(column))
    if kind == "count_distinct":
        return _distinct_codes(column, index, pieces)
    if kind == "mode":
        codes, labels = _sorted_codes(column)
        return events(codes), labels
    values, empty, reduce = _extreme_values(column, kind)
    return events(values), empty, reduce


def _entity_ranges(k: np.ndarray) -> np.ndarray:
    """Bounds of ranges of whole entities of about `SHARD_EVENTS` events each, in events sorted by key `k`: the
    ranges `aggregate_chunk` aggregates one at a time."""
    cuts = np.searchsorted(k, k[SHARD_EVENTS::SHARD_EVENTS], side="left")
    return np.unique([0, *cuts.tolist(), len(k)])


def _arrow_strings(column: pd.Series) -> bool:
    return isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow" and len(column) > 0


def _distinct_codes(column: pd.Series, index: np.ndarray, pieces: np.ndarray) -> tuple[np.ndarray, int]:
    """count_distinct's input: the value codes of the events at `index` (-1 for null), and a bound on the codes + 1.
    Arrow-backed strings are encoded by Arrow (the distinct values stay in Arrow, never ~1M Python strings), a
    range of whole entities (`pieces`) at a time: a distinct count compares an entity's own values only, so codes
    need to agree within an entity, not across them; encoding ~1M distinct session ids at once built a hash table
    of ~80 MB, the chunk's peak; a range's is a few MB. Other columns: `pd.factorize`."""
    if not _arrow_strings(column):
        codes, uniques = pd.factorize(column)
        return codes[index], len(uniques)
    values = pa.array(column)  # the column's own Arrow buffers (no copy)
    if isinstance(values, pa.ChunkedArray) and values.num_chunks > 1:
        # One array (a copy, freed below): Arrow's take from many chunks (a file's each) cost ~3x a take from
        # one, ~1 s of a 92-day run's ranges; the copy, ~4 ms and ~5 MB of the run's peak.
        values = values.combine_chunks(memory_pool=pa.system_memory_pool())
    codes = np.empty(len(index), dtype=np.int64)
    n_values = 0
    for start, stop in zip(pieces[:-1], pieces[1:]):
        dictionary, codes[start:stop] = _dictionary_encode(values.take(pa.array(index[start:stop])))
        n_values = max(n_values, len(dictionary))
    return codes, n_values


def _sorted_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """`pd.factorize(column, sort=True)`: codes in value order (-1 for null), and the values (an object array)."""
    if not _arrow_strings(column):
        codes, uniques = pd.factorize(column, sort=True)
        return codes, np.asarray(uniques, dtype=object)
    dictionary, codes = _dictionary_encode(column)
    if not len(dictionary):  # every value null: no value to rank (nor to index the ranks with)
        return codes, np.empty(0, dtype=object)
    order = pc.array_sort_indices(dictionary, memory_pool=pa.system_memory_pool()).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    labels = np.empty(len(order), dtype=object)
    labels[:] = dictionary.take(order).to_pylist()
    return np.where(codes >= 0, rank[np.maximum(codes, 0)], -1), labels


def _dictionary_encode(column: pd.Series | pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """(distinct values, codes with -1 for null) of an Arrow-backed column, encoded in the system allocator: the
    hash table of ~1M distinct session ids (~100 MB while it is built) is then malloc's to reuse, not kept by
    Arrow's own pool beside the pass's numpy arrays (92-day run: peak RSS 661 vs 709 MB; ~0.1 s slower a chunk)."""
    values = column if isinstance(column, (pa.Array, pa.ChunkedArray)) else pa.array(column)  # no copy
    encoded = pc.dictionary_encode(values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values]),
                                   memory_pool=pa.system_memory_pool())
    indices = pa.chunked_array([chunk.indices for chunk in encoded.chunks], type=encoded.type.index_type)
    return encoded.chunk(0).dictionary, pc.fill_null(indices, -1).to_numpy().astype(np.int64)  # one dictionary for all chunks


def aggregate_chunk(spec: FeatureViewSpec, raw: pd.DataFrame | Events, days: Sequence[date]) -> DayChunk:
    """The rows of `aggregate_day(spec, raw, day)` for each of `days`, in one frame, in one pass over `raw`
    (a range of entities at a time above `SHARD_EVENTS` events). `raw`: the raw frame, or its `events_of(spec,
    raw, days)` (consumed: see `Events`)."""
    wanted = sorted(set(days))
    if not wanted:
        return empty_chunk()
    lo, last = _offsets(spec, wanted)
    events = raw.take(wanted) if isinstance(raw, Events) else events_of(spec, raw, wanted)
    del raw
    if len(events) > SHARD_EVENTS:
        bounds = _entity_ranges(events.k)  # the events are sorted by key
        if len(bounds) > 2:
            try:
                parts = _aggregate_ranges(spec, events, bounds, wanted, lo, last)
            except AggregationOverflowError:
                pass  # the first overflow in (day, key) order over all entities: the one-pass error, below
            else:
                del events  # freed before the chunk's columns are allocated
                return _merge(wanted, parts)
    parts = [_aggregate_chunk(spec, events, wanted, lo, last)]
    del events
    return _merge(wanted, parts)


def _aggregate_ranges(spec: FeatureViewSpec, events: Events, bounds: np.ndarray, wanted: list[date], lo: int,
                      last: int) -> list[tuple[np.ndarray, dict]]:
    """`_aggregate_chunk` of each range of entities `bounds[i]:bounds[i + 1]` of `events`, `PASS_THREADS` at a time,
    in range order. The first range (in that order) that fails raises; the ranges not started yet never start."""
    with ThreadPoolExecutor(PASS_THREADS, thread_name_prefix="entity-ranges") as pool:
        futures = [pool.submit(_aggregate_chunk, spec, events.slice(a, b), wanted, lo, last)
                   for a, b in zip(bounds[:-1], bounds[1:])]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _merge(wanted: list[date], parts: list[tuple[np.ndarray, dict]]) -> DayChunk:
    """One chunk of the rows of consecutive entity ranges (each: its day bounds and typed columns): each day's
    rows, range after range. Each column is written once into its place, the numpy columns of one dtype into
    one 2-D block, so the frame is built (and later copied, e.g. by validation) without consolidating them;
    each day's rows are a view of it."""
    sizes = np.array([np.diff(b) for b, _ in parts]).reshape(len(parts), len(wanted))
    bounds = np.cumsum([0, *sizes.sum(axis=0).tolist()])
    starts = bounds[:-1] + np.cumsum(sizes, axis=0) - sizes  # where range s's rows of day i go
    total = int(bounds[-1])

    def place(pieces: list, into: np.ndarray) -> None:
        for (part_bounds, _), piece, start in zip(parts, pieces, starts):
            for i in range(len(wanted)):
                into[start[i]:start[i] + part_bounds[i + 1] - part_bounds[i]] = piece[part_bounds[i]:part_bounds[i + 1]]

    names = [*parts[0][1], EVENT_TIMESTAMP]
    numpy_dtype: dict[int, np.dtype] = {}  # position -> dtype of the columns numpy in every range
    for position, name in enumerate(names[:-1]):
        pieces = [columns[name] for _, columns in parts]
        if all(isinstance(p, np.ndarray) and p.dtype == pieces[0].dtype for p in pieces):
            numpy_dtype[position] = pieces[0].dtype
    blocks: list[tuple[object, list[int]]] = []
    for dtype in dict.fromkeys(numpy_dtype.values()):
        positions = [p for p, t in numpy_dtype.items() if t == dtype]
        block = np.empty((len(positions), total), dtype=dtype)
        for row, position in zip(block, positions):
            place([columns.pop(names[position]) for _, columns in parts], row)  # each range's copy freed once placed
        blocks.append((block, positions))
    for position, name in enumerate(names[:-1]):
        if position not in numpy_dtype:  # e.g. nullable integers in some ranges only: pandas finds the common dtype
            pieces = [pd.Series(columns.pop(name)) for _, columns in parts]
            take = np.concatenate([np.arange(off + b[i], off + b[i + 1]) for i in range(len(wanted))
                                   for (b, _), off in zip(parts, np.cumsum([0, *(int(b[-1]) for b, _ in parts)]))])
            blocks.append((_array(pd.concat(pieces, ignore_index=True).take(take)), [position]))
    ends = pd.DatetimeIndex([day_end(x) for x in wanted]).as_unit("us")
    blocks.append((ends.repeat(np.diff(bounds)).array, [len(names) - 1]))
    return DayChunk(wanted, frame_from_blocks(names, blocks, total), bounds)


def _aggregate_chunk(spec: FeatureViewSpec, events: Events, wanted: list[date], lo: int,
                     last: int) -> tuple[np.ndarray, dict]:
    """The rows of `wanted` from `events` (day, then key order): each day's bounds in them, and the typed
    columns (the key and the features, in the spec's dtypes)."""
    agg = spec.aggregation
    key = spec.entity.join_key
    width = agg.window.days
    span = last + width + 2  # room for day + width past the last day, per key
    k, d = events.k, events.d

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
    mode_labels: dict[str, np.ndarray] = {}  # mode feature -> its labels, the empty value last
    for a in agg.aggs:
        if a.fn in ("count", "mean"):  # counts (and count_distinct) are at most the events: they never overflow
            count = window_sum(events.inputs["count", a.column].astype(np.int64))
        if a.fn == "count":
            columns[a.feature] = count
        elif a.fn in ("sum", "mean"):
            values = events.inputs["sum", a.column]
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
            codes, n_values = events.inputs["count_distinct", a.column]
            columns[a.feature] = _count_distinct(grid, k, d, grid.at[partial], codes, n_values, width)
        elif a.fn == "mode":
            codes, labels = events.inputs["mode", a.column]
            columns[a.feature] = _mode(grid, k, d, partial, n_partials, codes, len(labels), width)
            mode_labels[a.feature] = np.append(labels, np.array([a.empty_value], dtype=object))
        else:
            values, empty, reduce = events.inputs[a.fn, a.column]
            columns[a.feature] = _extreme(grid, partial, n_partials, values, empty, reduce, width)

    # Grid rows of the wanted days, ordered by day then key (the grid is key-major; a stable sort of
    # small integers is a radix sort in numpy).
    wanted_offsets = np.array([(x - _EPOCH).days - lo for x in wanted])
    rows = np.flatnonzero(np.isin(grid.day, wanted_offsets))
    row_day = grid.day[rows].astype(np.int16 if span < 2**15 else np.int64)
    pick = rows[np.argsort(row_day, kind="stable")]
    closing = n_events[pick] == 0
    if overflows:
        _check_fits(spec, wanted, wanted_offsets, grid, pick, events.key_values, overflows, exact)
    rows = {key: events.key_values.take(grid.group[pick])}
    for a in agg.aggs:
        if a.feature in mode_labels:  # the best value's label; -1 (no value in the window) takes the empty value
            rows[a.feature] = _fill(mode_labels[a.feature][columns[a.feature][pick]], closing, a.empty_value)
        else:
            rows[a.feature] = _fill(columns[a.feature][pick], closing, a.empty_value)
    bounds = np.searchsorted(grid.day[pick], np.append(wanted_offsets, wanted_offsets[-1] + 1))
    return bounds, _typed_columns(spec, rows)


def _typed_columns(spec: FeatureViewSpec, rows: dict) -> dict:
    """`cast_to_spec` of the columns `rows` (the key, then the features), as arrays: numpy columns are cast by numpy
    (a frame built and cast per range of entities cost ~0.3 s of a 92-day run); anything else through a frame."""
    typed = {}
    for name, values in rows.items():
        dtype = spec.entity.dtype if name == spec.entity.join_key else spec.field(name).dtype
        typed[name] = cast_array(values.to_numpy() if isinstance(values, pd.Index) and isinstance(values.dtype, np.dtype)
                                 else values, dtype)
        if typed[name] is None:
            frame = cast_to_spec(spec, pd.DataFrame(rows), copy=False)
            return {name: _array(frame[name]) for name in frame.columns}
    return typed


def _array(column: pd.Series):
    """A column's values: numpy for numpy dtypes, else its extension array (nullable integers)."""
    return column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array


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
        return values.astype(np.int64, copy=False)
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


def _count_distinct(grid: _Grid, k, d, row, values: np.ndarray, n_values: int, width: int) -> np.ndarray:
    """Distinct non-null values per window: a value counts from its first day in the window until
    `width` days after its last, so repeats within the window are counted once. `row[i]`: the grid
    row of event i's (key, day); its key's later days follow it. `values`: the events' value codes (-1: null)."""
    ok = values >= 0
    k, d, v, row = k[ok], d[ok], values[ok].astype(np.int64), row[ok]
    pair = _pair_codes(k, v, n_values, grid.span)
    order = _stable_order(pair * grid.span + d) if pair is not None else np.lexsort((d, v, k))
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


def _mode(grid: _Grid, k, d, partial, n_partials: int, values: np.ndarray, n_values: int, width: int) -> np.ndarray:
    """The code of the most frequent non-null value per window (`values`: the events' codes in value order,
    -1 for null), ties to the smallest; -1 where there is none."""
    if n_values == 0:
        return np.full(len(grid), -1, dtype=np.int64)
    if n_values <= MODE_DIRECT_MAX_VALUES:
        # Every value's count per window at once: each day's count of each value (one bincount) put on its grid row,
        # summed down the grid, less the sum `width` rows up. A key's rows are consecutive days and end `width` days
        # after its last event, so those rows up are its own or a previous key's empty tail: the difference is the
        # window's count. int32 (a window holds fewer events; a running sum that wraps still differs right).
        ok = values >= 0
        daily = np.bincount(partial[ok] * n_values + values[ok], minlength=n_partials * n_values).astype(np.int32)
        row = np.dtype((np.void, 4 * n_values))  # a grid row of counts as one item: one fancy assignment, not n_values
        counts = np.zeros((len(grid), n_values), dtype=np.int32)
        counts.view(row).reshape(len(grid))[grid.at] = daily.view(row)
        np.cumsum(counts, axis=0, out=counts)
        counts[width:] -= counts[:-width].copy()
        best = counts.argmax(axis=1)  # the first of the largest counts: ties go to the smaller value
        best[counts[np.arange(len(grid)), best] == 0] = -1
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
    return best


def _extreme_values(column: pd.Series, fn: str):
    """(values, empty, reduce) of min / max: integers (never null) stay int64, as float64 would round them above
    2**53; anything else as float64 with NaN for nulls, ignored by `np.fmin`/`np.fmax`."""
    values = column.to_numpy()
    if values.dtype.kind == "i":  # rows without an event are closing rows (refilled)
        empty = np.iinfo(np.int64).max if fn == "min" else np.iinfo(np.int64).min
        return values.astype(np.int64, copy=False), empty, np.minimum if fn == "min" else np.maximum
    values = pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan)
    return values, np.nan, np.fmin if fn == "min" else np.fmax


def _extreme(grid: _Grid, partial, n_partials: int, values: np.ndarray, empty, reduce, width: int) -> np.ndarray:
    """min / max: each day's extreme spread over the windows that hold it (nulls ignored)."""
    daily = np.full(n_partials, empty, dtype=values.dtype)
    reduce.at(daily, partial, values)
    out = np.full(len(grid), empty, dtype=values.dtype)
    for i in range(width):  # unique rows per step, so plain fancy indexing is safe
        out[grid.at + i] = reduce(out[grid.at + i], daily)
    return out
