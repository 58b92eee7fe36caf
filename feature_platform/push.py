"""Pushed event batches: split into rows that can land and rows that go to the dead-letter, with a reason each.

One rule set for every path. `prepare_batch` coerces each column to the view's dtype exactly (nothing wraps
around, overflows unnoticed or rounds into range; event times are kept to the microsecond, the offline
stores' precision) and judges the typed values with the view's rules: `field_rules`, the very functions
Pandera runs on computed partitions. The low-latency path, the sensor path and the drain of the direct log
all call it, and an accepted row, judged again, is accepted again unchanged (the drain re-judges what the
low-latency path logged), so a value served online always lands offline too.

Nothing here writes: `prepare_batch` is pure. A bad row never stops the good rows of its batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa

from feature_platform.derive.pandera_schema import field_rules
from feature_platform.dtypes import fits_int64, pandas_dtype
from feature_platform.errors import InvalidBatchError, shorten
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.landing import NATIVE, value_text
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP

MAX_CLOCK_SKEW = timedelta(minutes=5)  # events further in the future than this are rejected
REASON = "reason"
_MISSING = "missing"
_NAN = "not a number"
_OUT_OF_INT64 = "outside the int64 range"


@dataclass
class PreparedBatch:
    accepted: pd.DataFrame  # typed rows: key, features, event_timestamp, created_timestamp
    rejected: pd.DataFrame  # the offending input rows as text, plus `reason`
    duplicates: int  # rows dropped as repeats of (key, event_timestamp)

    @property
    def newest_event(self) -> pd.Timestamp | None:
        return None if self.accepted.empty else self.accepted[EVENT_TIMESTAMP].max()


def check_columns(spec: FeatureViewSpec, batch: pd.DataFrame) -> pd.DataFrame:
    """`batch` with text column names, or `InvalidBatchError` when two columns share a name (no row could
    be judged: which one is the value?)."""
    names = [str(c) for c in batch.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidBatchError(f"batch for view {spec.name!r} has repeated column(s) {shorten(repeated, 300)}")
    return batch if list(batch.columns) == names else batch.set_axis(names, axis=1)


# Object columns Arrow stores value for value (when it can type them at all): it would turn [0.5, True]
# into floats, [1, 2.5] into 1.0 and 2.5, and mixed time zones into one.
_EXACT_IN_ARROW = {"integer", "floating", "boolean", "string", "empty"}


def transportable(batch: pd.DataFrame) -> pd.DataFrame:
    """`batch` as the transports can store it: an object column that Arrow cannot store exactly (mixed
    types, ints beyond int64, times, lists...) becomes text, nulls kept. The text is judged exactly as the
    value itself (`value_text`), so the sensor path judges the same values the direct path does, instead of
    the transport crashing on them or changing them."""
    out = None
    for name in batch.columns:
        column = batch[name]
        if column.dtype != object:
            continue
        if pd.api.types.infer_dtype(column, skipna=True) in _EXACT_IN_ARROW:
            try:
                pa.array(column, from_pandas=True)
                continue
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                pass
        out = batch.copy() if out is None else out
        out[name] = column.map(value_text, na_action="ignore")
    return batch if out is None else out


def prepare_batch(spec: FeatureViewSpec, batch: pd.DataFrame, now: datetime | None = None) -> PreparedBatch:
    """Coerce, check and dedupe one pushed batch for `spec` (every path's rules)."""
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    batch = check_columns(spec, batch)
    key = spec.entity.join_key
    wanted = [key, EVENT_TIMESTAMP, *spec.feature_names]
    missing = [c for c in wanted if c not in batch.columns]
    if missing:
        rejected = batch.astype(str).assign(**{REASON: f"batch lacks column(s) {missing} of view {spec.name!r}"})
        nothing = pd.DataFrame({c: pd.Series(dtype=object) for c in wanted})
        return PreparedBatch(prepare_batch(spec, nothing, now).accepted, rejected, 0)

    n = len(batch)
    reasons: list[list[str]] = [[] for _ in range(n)]
    typed: dict[str, _Typed] = {}

    typed[key] = column = _coerce(spec.entity.dtype, batch[key])
    int_key = spec.entity.dtype == "int64"
    for i in np.flatnonzero(column.null):
        reasons[i].append(f"{key}: missing or not an integer" if int_key else f"{key}: missing")
    for i, problem in column.problem_rows():
        reasons[i].append(f"{key}: {problem if problem == _OUT_OF_INT64 or not int_key else 'missing or not an integer'}")

    stamps, checks = _timestamps(batch[EVENT_TIMESTAMP])
    latest = pd.Timestamp(now + MAX_CLOCK_SKEW).as_unit("ns").value
    checks.append((stamps > latest, f"more than {MAX_CLOCK_SKEW} in the future"))
    for mask, text in checks:
        for i in np.flatnonzero(mask):
            reasons[i].append(f"{EVENT_TIMESTAMP}: {text}")

    for f in spec.fields:
        typed[f.name] = column = _coerce(f.dtype, batch[f.name])
        for i, problem in column.problem_rows():
            reasons[i].append(f"{f.name}: {problem}")
        if not f.nullable:
            for i in np.flatnonzero(column.null):
                reasons[i].append(f"{f.name}: missing")

    # The view's rules judge the typed values of the rows that passed the checks above, each row on its
    # own (a bad row is rejected even when a later one repeats its key and time; repeats go afterwards).
    ok = np.fromiter((not r for r in reasons), dtype=bool, count=n)
    for f in spec.fields:
        judged = np.flatnonzero(ok & ~typed[f.name].null)
        if not len(judged):
            continue
        present = typed[f.name].values[judged]
        for rule in field_rules(f):
            for j in np.flatnonzero(~np.asarray(rule.holds(present), dtype=bool)):
                reasons[judged[j]].append(f"{f.name}: failed {rule.check} (value {_cut(present[j])})")
    ok = np.fromiter((not r for r in reasons), dtype=bool, count=n)

    good = np.flatnonzero(ok)
    rows = good[_last_of_each(typed[key].values[good], stamps[good])]
    accepted = pd.DataFrame({
        key: typed[key].final(rows),
        EVENT_TIMESTAMP: _utc(stamps[rows]),
        **{f.name: typed[f.name].final(rows) for f in spec.fields},
        CREATED_TIMESTAMP: pd.array(np.full(len(rows), now.tz_convert(None).asm8), dtype=pd.DatetimeTZDtype(now.unit, "UTC")),
    })
    if ok.all():
        rejected = _empty_rejected(batch)
    else:
        rejected = batch.iloc[np.flatnonzero(~ok)].reset_index(drop=True).astype(str)
        rejected[REASON] = ["; ".join(r) for r in reasons if r]
    return PreparedBatch(accepted, rejected, len(good) - len(rows))


SMALL_BATCH = 1000


def prepare_small_batch(spec: FeatureViewSpec, batch: pd.DataFrame, now: datetime | None = None) -> PreparedBatch | None:
    """`prepare_batch` for a small batch whose columns already have the view's dtypes (what a service
    pushing a few events builds), None for any other batch. There is one rule set: typed columns simply
    take `prepare_batch`'s vectorised paths."""
    key = spec.entity.join_key
    wanted = [key, EVENT_TIMESTAMP, *spec.feature_names]
    if len(batch) > SMALL_BATCH or any(c not in batch.columns for c in wanted) or not _well_typed(spec, batch):
        return None
    return prepare_batch(spec, batch, now)


def _last_of_each(keys: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Positions of the last row of each (key, time), in row order: a repeat overrides what it repeats."""
    last = {}
    for i, pair in enumerate(zip(keys.tolist(), stamps.tolist())):
        last[pair] = i
    return np.fromiter(sorted(last.values()), dtype=np.intp, count=len(last))


@lru_cache(maxsize=64)
def _empty_frame(columns: tuple) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _empty_rejected(batch: pd.DataFrame) -> pd.DataFrame:
    return _empty_frame((*batch.columns, REASON))  # shared and read-only: nothing was rejected


def _well_typed(spec: FeatureViewSpec, batch: pd.DataFrame) -> bool:
    stamps = batch[EVENT_TIMESTAMP]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype) or ((stamps < _TS_MIN) | (stamps > _TS_MAX)).any():
        return False
    kinds = {spec.entity.join_key: spec.entity.dtype, **{f.name: f.dtype for f in spec.fields}}
    return all(_fits(dtype, batch[column]) for column, dtype in kinds.items())


def _fits(dtype: str, column: pd.Series) -> bool:
    """Whether `column` already holds `dtype`: numbers of a numpy dtype that converts exactly, or text."""
    d = column.dtype
    numpy_int = isinstance(d, np.dtype) and (d.kind == "i" or (d.kind == "u" and d.itemsize < 8))
    if dtype == "int64":
        return numpy_int
    if dtype in ("float32", "float64"):
        return numpy_int or (isinstance(d, np.dtype) and d.kind == "f")
    if dtype == "string":
        return d == np.dtype(object) and all(v is None or isinstance(v, str) for v in column)
    return False


# ---- coercion: one parser per declared dtype; numpy columns of the right kind skip the parsing ----

@dataclass
class _Typed:
    """A column coerced to its dtype: `values` (numpy; a placeholder where null or bad), `null` (the value
    is missing) and, per row, None or the problem that makes the value unusable."""

    dtype: str
    values: np.ndarray
    null: np.ndarray
    problems: np.ndarray | None = None

    def problem_rows(self):
        if self.problems is not None:
            for i in np.flatnonzero(pd.notna(self.problems)):
                yield int(i), self.problems[i]

    def final(self, rows: np.ndarray):
        """The values of `rows` in the accepted frame's dtype (a nullable one where a null is present)."""
        values, null = self.values[rows], self.null[rows]
        if self.dtype == "int64" and null.any():
            return pd.arrays.IntegerArray(values, null)
        if self.dtype == "bool" and null.any():
            return pd.arrays.BooleanArray(values, null)
        return values  # floats hold NaN, text None, where null


def _coerce(dtype: str, column: pd.Series) -> _Typed:
    d = column.dtype
    kind = d.kind if isinstance(d, np.dtype) else None
    if dtype == "int64" and (kind == "i" or (kind == "u" and d.itemsize < 8)):  # uint64 may exceed int64
        return _Typed(dtype, column.to_numpy(dtype="int64"), np.zeros(len(column), dtype=bool))
    if dtype in ("float32", "float64") and kind is not None and kind in "iuf":
        with np.errstate(over="ignore"):  # beyond float32: infinite here, then rejected by the `finite` rule
            values = column.to_numpy(dtype="float64").astype(dtype)
        return _Typed(dtype, values, np.isnan(values))
    if dtype == "bool" and kind == "b":
        return _Typed(dtype, column.to_numpy(), np.zeros(len(column), dtype=bool))
    parse = {"int64": _integer, "float32": _number, "float64": _number, "bool": _boolean}.get(dtype, _text_of)
    parsed = [parse(v if _null(v) or isinstance(v, NATIVE) else value_text(v)) for v in column.tolist()]
    problems = np.empty(len(parsed), dtype=object)
    problems[:] = [p for _, p in parsed]
    null = problems == _MISSING
    problems[null] = None
    raw = [v for v, _ in parsed]
    if dtype in ("float32", "float64"):
        problems[problems == _NAN] = f"{_NAN} ({dtype})"
        with np.errstate(over="ignore"):
            values = np.array(raw, dtype="float64").astype(dtype)
    elif dtype == "string":
        values = np.empty(len(raw), dtype=object)
        values[:] = raw
    else:
        values = np.array([(False if dtype == "bool" else 0) if v is None else v for v in raw], dtype=pandas_dtype(dtype))
    return _Typed(dtype, values, null, problems if pd.notna(problems).any() else None)


def _null(v) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating, np.datetime64, np.timedelta64)) and bool(pd.isna(v))


def _integer(v) -> tuple[int | None, str | None]:
    """An exact int64, or the problem. No float round trip, so 2**60 + 1 stays itself, and nothing wraps
    around: a key outside int64 must never land as another entity's key."""
    if _null(v):
        return None, _MISSING
    if isinstance(v, (bool, np.bool_)):
        return None, "not a number (int64)"  # True is not a count, nor a user id
    if isinstance(v, str):
        try:
            v = int(v.strip())
        except ValueError:
            try:
                v = float(v)
            except ValueError:
                return None, "not a number (int64)"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return None, "not a number (int64)"
        if not float(v).is_integer():
            return None, "not an integer"
    elif not isinstance(v, (int, np.integer)):
        return None, "not a number (int64)"
    n = int(v)
    return (n, None) if fits_int64(n) else (None, _OUT_OF_INT64)


def _number(v) -> tuple[float, str | None]:
    """A number as float64 (the caller narrows it to the field's dtype), or the problem."""
    if _null(v):
        return math.nan, _MISSING
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (str, int, float, np.integer, np.floating)):
        return math.nan, _NAN
    try:
        n = float(v.strip() if isinstance(v, str) else v)
    except OverflowError:  # an int beyond any float: out of range, as the text '9' * 400 is
        return math.copysign(math.inf, int(v)), None
    except ValueError:
        return math.nan, _NAN
    return (n, None) if n == n else (math.nan, _NAN)


_BOOL_TEXT = {"True": True, "False": False, "true": True, "false": False}


def _boolean(v) -> tuple[bool | None, str | None]:
    if _null(v):
        return None, _MISSING
    if isinstance(v, (bool, np.bool_)):
        return bool(v), None
    if isinstance(v, str) and v in _BOOL_TEXT:
        return _BOOL_TEXT[v], None  # how Python and JSON write booleans (a transport may carry them as text)
    return None, "not a boolean"


def _text_of(v) -> tuple[str | None, str | None]:
    return (None, _MISSING) if _null(v) else (value_text(v), None)


def _cut(value, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


_TS_MIN, _TS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")  # nanosecond range
_NAT = np.iinfo(np.int64).min
_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _timestamps(values: pd.Series) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """Nanoseconds since the epoch (UTC), floored to the microsecond (what the offline stores hold, so
    online and offline agree; NaT where unusable), and the column's (mask, problem) checks: missing or
    unparsable, outside the nanosecond range (pandas parses years 1..9999, the stores would raise), naive."""
    n = len(values)
    naive = out = np.zeros(n, dtype=bool)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        raw = values.array.asi8  # UTC, in the column's unit
        per = _PER_UNIT[values.dtype.unit]
        unparsable = raw == _NAT
        out = ~unparsable & ((raw < -(-_TS_MIN.value // per)) | (raw > _TS_MAX.value // per))
        stamps = np.where(unparsable | out, 0, raw) * per
        stamps[unparsable | out] = _NAT
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        unparsable = values.isna().to_numpy()
        stamps, naive = np.full(n, _NAT, dtype=np.int64), ~unparsable
    else:
        parsed = [_parse(v) for v in values.tolist()]
        unparsable = np.fromiter((p is None for p in parsed), dtype=bool, count=n)
        naive = np.fromiter((p is not None and p.tzinfo is None for p in parsed), dtype=bool, count=n)
        aware = [None if p is None or p.tzinfo is None else p for p in parsed]
        out = np.fromiter((p is not None and not _TS_MIN <= p <= _TS_MAX for p in aware), dtype=bool, count=n)
        stamps = np.fromiter((_NAT if p is None or o else p.as_unit("ns").value for p, o in zip(aware, out)),
                             dtype=np.int64, count=n)
    usable = stamps != _NAT
    stamps[usable] -= stamps[usable] % 1000
    checks = [(unparsable, "missing or not a timestamp"), (out, f"outside {_TS_MIN.date()}..{_TS_MAX.date()}"),
              (naive, "timezone-naive (send UTC offsets, e.g. 2026-01-01T12:00:00Z)")]
    return stamps, checks


def _utc(stamps: np.ndarray) -> pd.arrays.DatetimeArray:
    return pd.DatetimeIndex(stamps.view("M8[ns]")).tz_localize("UTC").array


def _parse(value) -> pd.Timestamp | None:
    if _null(value):
        return None
    if not isinstance(value, NATIVE):
        value = value_text(value)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    return None if pd.isna(stamp) else stamp
