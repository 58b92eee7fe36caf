"""Pushed event batches: split into rows that can land and rows that go to the dead-letter, with a reason each.

Nothing here writes: `prepare_batch` is pure, so the sensor path and the low-latency path validate
exactly alike. A bad row never stops the good rows of its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa

from feature_platform.compute.window_aggregate import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feature_platform.derive.pandera_schema import pandera_schema
from feature_platform.errors import InvalidBatchError, shorten
from feature_platform.pipeline import validate
from feature_platform.spec import FeatureViewSpec

MAX_CLOCK_SKEW = timedelta(minutes=5)  # events further in the future than this are rejected
REASON = "reason"
_NUMERIC = {"int64", "float32", "float64"}


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


def transportable(batch: pd.DataFrame) -> pd.DataFrame:
    """`batch` as the transports can store it: an object column that Arrow cannot type (mixed ints and
    text, ints beyond int64, lists...) becomes text, nulls kept, so the sensor path judges the same values
    the direct path does instead of the transport crashing on them."""
    out = None
    for name in batch.columns:
        column = batch[name]
        if column.dtype != object:
            continue
        try:
            pa.array(column, from_pandas=True)
            continue
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            pass
        out = batch.copy() if out is None else out
        out[name] = column.map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore")
    return batch if out is None else out


def prepare_batch(spec: FeatureViewSpec, batch: pd.DataFrame, now: datetime | None = None) -> PreparedBatch:
    """Coerce, check and dedupe one pushed batch for `spec`."""
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    batch = check_columns(spec, batch)
    key = spec.entity.join_key
    wanted = [key, EVENT_TIMESTAMP, *spec.feature_names]
    missing = [c for c in wanted if c not in batch.columns]
    if missing:
        rejected = batch.astype(str).assign(**{REASON: f"batch lacks column(s) {missing} of view {spec.name!r}"})
        return PreparedBatch(_empty(spec), rejected, 0)

    frame = batch[wanted].reset_index(drop=True)
    reasons = pd.Series([[] for _ in range(len(frame))], dtype=object)
    typed = pd.DataFrame(index=frame.index)

    if spec.entity.dtype == "int64":
        keys, problems = _integers(frame[key])
        bad_key = problems.notna()
        _note(reasons, bad_key & (problems != "outside the int64 range"), f"{key}: missing or not an integer")
        _note(reasons, problems == "outside the int64 range", f"{key}: outside the int64 range")
        typed[key] = keys.where(~bad_key, 0).astype("int64")
    else:
        bad_key = frame[key].isna()
        _note(reasons, bad_key, f"{key}: missing")
        typed[key] = frame[key].where(~bad_key, "").astype(str).astype(object)

    stamps, naive, unparsable, out_of_range = _timestamps(frame[EVENT_TIMESTAMP])
    _note(reasons, unparsable, f"{EVENT_TIMESTAMP}: missing or not a timestamp")
    _note(reasons, out_of_range, f"{EVENT_TIMESTAMP}: outside {_TS_MIN.date()}..{_TS_MAX.date()}")
    _note(reasons, naive, f"{EVENT_TIMESTAMP}: timezone-naive (send UTC offsets, e.g. 2026-01-01T12:00:00Z)")
    future = stamps > now + MAX_CLOCK_SKEW
    _note(reasons, future.fillna(False), f"{EVENT_TIMESTAMP}: more than {MAX_CLOCK_SKEW} in the future")
    typed[EVENT_TIMESTAMP] = stamps

    for f in spec.fields:
        column = frame[f.name]
        if f.dtype == "int64":
            values, problems = _integers(column)
            for problem in ("not a number (int64)", "not an integer", "outside the int64 range"):
                _note(reasons, problems == problem, f"{f.name}: {problem}")
            typed[f.name] = values
        elif f.dtype in _NUMERIC:
            values = _floats(column)
            _note(reasons, values.isna() & column.notna(), f"{f.name}: not a number ({f.dtype})")
            typed[f.name] = values
        else:
            typed[f.name] = column.where(column.isna(), column.astype(str))
        if not f.nullable:
            _note(reasons, column.isna(), f"{f.name}: missing")

    ok = reasons.map(len) == 0
    # Every row is judged on its own (a bad row is rejected even when a later one repeats its key and
    # time); repeats are dropped afterwards, so the schema's uniqueness check is not a row failure here.
    failures = validate(spec, _cast(spec, typed[ok]))
    if failures is not None:
        failures = failures[~failures["check"].astype(str).str.contains("uniqueness")]
        for idx, group in failures.dropna(subset=["index"]).groupby("index"):
            reasons[idx] = reasons[idx] + [f"{r.column}: failed {r.check} (value {r.failure_case})" for r in group.itertuples()]
        ok = reasons.map(len) == 0

    accepted = typed[ok]
    deduped = accepted.drop_duplicates([key, EVENT_TIMESTAMP], keep="last")
    accepted = _cast(spec, deduped).assign(**{CREATED_TIMESTAMP: now}).reset_index(drop=True)
    rejected = batch.reset_index(drop=True)[~ok].astype(str).assign(**{REASON: reasons[~ok].map("; ".join)})
    return PreparedBatch(accepted, rejected.reset_index(drop=True), len(typed[ok]) - len(deduped))


SMALL_BATCH = 1000  # up to this many well-typed rows, row-by-row checks beat Pandera's ~25 ms per call


def prepare_small_batch(spec: FeatureViewSpec, batch: pd.DataFrame, now: datetime | None = None) -> PreparedBatch | None:
    """`prepare_batch`'s rules, checked row by row in plain Python for a small batch whose columns
    already have the view's dtypes (what a service pushing a few events builds): the low-latency
    path's validation without Pandera's per-call overhead (~25 ms). Returns None when the batch does
    not qualify; `prepare_batch` then handles it. A property test keeps the two in agreement."""
    key = spec.entity.join_key
    wanted = [key, EVENT_TIMESTAMP, *spec.feature_names]
    if len(batch) > SMALL_BATCH or any(c not in batch.columns for c in wanted) or not _well_typed(spec, batch):
        return None
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    stamps = batch[EVENT_TIMESTAMP].dt.tz_convert("UTC")
    keys, times = batch[key].tolist(), stamps.tolist()
    columns = {f.name: batch[f.name].to_numpy() for f in spec.fields}
    values = {name: column.tolist() for name, column in columns.items()}
    latest = now + MAX_CLOCK_SKEW
    reasons: list[list[str]] = []
    for i in range(len(batch)):
        early = []
        if keys[i] is None:
            early.append(f"{key}: missing")
        if pd.isna(times[i]):
            early.append(f"{EVENT_TIMESTAMP}: missing or not a timestamp")
        elif times[i] > latest:
            early.append(f"{EVENT_TIMESTAMP}: more than {MAX_CLOCK_SKEW} in the future")
        for f in spec.fields:
            if not f.nullable and _missing(values[f.name][i]):
                early.append(f"{f.name}: missing")
        # Like prepare_batch, the schema's checks only judge rows that passed the checks above.
        reasons.append(early or [r for f in spec.fields for r in _field_failures(f, values[f.name][i])])
    last = {}
    for i, r in enumerate(reasons):
        if not r:
            last[(keys[i], times[i])] = i  # a repeated (key, time): the last one wins
    keep = sorted(last.values())
    accepted = pd.DataFrame({
        key: np.asarray(keys, dtype="int64" if spec.entity.dtype == "int64" else object)[keep],
        EVENT_TIMESTAMP: stamps.array[keep],
        **{f.name: columns[f.name][keep].astype(f.dtype if f.dtype != "string" else object) for f in spec.fields},
        CREATED_TIMESTAMP: pd.array([now] * len(keep), dtype=pd.DatetimeTZDtype(now.unit, "UTC")),
    })
    n_ok = sum(1 for r in reasons if not r)
    if n_ok == len(batch):
        rejected = _empty_rejected(batch)
    else:
        bad = [i for i, r in enumerate(reasons) if r]
        rejected = batch.iloc[bad].reset_index(drop=True).astype(str)
        rejected[REASON] = ["; ".join(reasons[i]) for i in bad]
    return PreparedBatch(accepted, rejected, n_ok - len(keep))


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
    """Whether `column` already holds `dtype` the way prepare_batch would coerce it (no coercion needed)."""
    d = column.dtype
    # uint64 may exceed int64: prepare_batch rejects those rather than letting them wrap around.
    numpy_int = isinstance(d, np.dtype) and (d.kind == "i" or (d.kind == "u" and d.itemsize < 8))
    if dtype == "int64":
        return numpy_int
    if dtype in ("float32", "float64"):
        return numpy_int or (isinstance(d, np.dtype) and d.kind == "f")
    if dtype == "string":
        return d == np.dtype(object) and all(v is None or isinstance(v, str) for v in column)
    return False  # bool: prepare_batch reads bools as text; no shortcut for them


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _field_failures(f, value) -> list[str]:
    if _missing(value):
        return []
    out = []
    if f.ge is not None and not value >= f.ge:
        out.append(f"{f.name}: failed greater_than_or_equal_to({f.ge}) (value {value})")
    if f.le is not None and not value <= f.le:
        out.append(f"{f.name}: failed less_than_or_equal_to({f.le}) (value {value})")
    if f.isin is not None and value not in f.isin:
        out.append(f"{f.name}: failed isin({list(f.isin)}) (value {value})")
    if f.dtype.startswith("float") and value in (float("inf"), float("-inf")):
        out.append(f"{f.name}: failed finite (value {value})")
    return out


_TS_MIN, _TS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")  # nanosecond range


def _timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """UTC nanosecond timestamps, plus masks of naive, unparsable and out-of-range values (pandas
    parses years 1..9999, but the stores hold nanoseconds: converting those would raise)."""
    none = pd.Series(False, index=values.index)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        stamps = values.dt.tz_convert("UTC")
        out = (stamps < _TS_MIN) | (stamps > _TS_MAX)
        return stamps.where(~out).astype("datetime64[ns, UTC]"), none, values.isna(), out
    if pd.api.types.is_datetime64_dtype(values.dtype):
        naive = values.notna()
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]"), naive, values.isna(), none
    parsed = [_parse(v) for v in values]
    naive = pd.Series([p is not None and p.tzinfo is None for p in parsed], index=values.index)
    aware = [p.tz_convert("UTC") if p is not None and p.tzinfo else None for p in parsed]
    out = pd.Series([p is not None and not _TS_MIN <= p <= _TS_MAX for p in aware], index=values.index)
    stamps = pd.Series([p if p is not None and not o else pd.NaT for p, o in zip(aware, out)],
                       index=values.index, dtype="datetime64[ns, UTC]")
    return stamps, naive, pd.Series([p is None for p in parsed], index=values.index), out


def _parse(value) -> pd.Timestamp | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(stamp) else stamp


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _integers(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Exact int64 values (nullable Int64) and, per row, None or the problem: "missing", "not a number
    (int64)", "not an integer" or "outside the int64 range". No float round trip, so 2**60 + 1 stays
    itself, and nothing wraps around: a key outside int64 must never land as another entity's key."""
    d = column.dtype
    if isinstance(d, np.dtype) and d.kind == "i":
        return column.astype("Int64"), pd.Series(None, index=column.index, dtype=object)
    parsed = [_integer(v) for v in column.tolist()]
    values = pd.array([v for v, _ in parsed], dtype="Int64")
    return pd.Series(values, index=column.index), pd.Series([p for _, p in parsed], index=column.index, dtype=object)


def _integer(v) -> tuple[int | None, str | None]:
    if _missing(v) or v is pd.NA or v is pd.NaT:
        return None, "missing"
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
    return (n, None) if _INT64_MIN <= n <= _INT64_MAX else (None, "outside the int64 range")


def _floats(column: pd.Series) -> pd.Series:
    """Numbers as float64 (NaN where not a number); bools are not numbers here."""
    if column.dtype == bool:
        return pd.Series(np.nan, index=column.index)
    if column.dtype == object:
        column = column.map(lambda v: None if isinstance(v, (bool, np.bool_)) else v)
    return pd.to_numeric(column, errors="coerce").astype("float64")


def _note(reasons: pd.Series, mask: pd.Series, text: str) -> None:
    for i in mask[mask.fillna(False).astype(bool)].index:
        reasons[i] = reasons[i] + [text]


def _cast(spec: FeatureViewSpec, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for f in spec.fields:
        if f.dtype == "int64" and not frame[f.name].isna().any():
            frame[f.name] = frame[f.name].astype("int64")
        elif f.dtype in ("float32", "float64"):
            frame[f.name] = frame[f.name].astype(f.dtype)
    return frame


def _empty(spec: FeatureViewSpec) -> pd.DataFrame:
    schema = pandera_schema(spec)
    frame = pd.DataFrame({name: pd.Series(dtype=str(col.dtype)) for name, col in schema.columns.items()})
    return frame.assign(**{CREATED_TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]")})
