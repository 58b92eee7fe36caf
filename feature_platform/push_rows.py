"""The low-latency path's rows without pandas: a plain batch judged cell by cell, or handed back.

`prepare_rows` takes what a service pushing a few events builds (a list of row dicts, or a small
DataFrame) and returns the rows `prepare_batch` would accept, as Python lists, when `prepare_batch`
would accept every row; None otherwise (a bad, missing or unusual value, or a large batch). Then the
caller runs `prepare_batch` itself, so every rejection, its message and every corner of coercion stay
in one place: this module only recognises the plain case. Each cell is parsed by `push.py`'s own
parsers, and the view's rules (`field_rules`, the functions Pandera runs) judge numpy arrays of the
same dtypes as there, so the two agree (property-tested against `prepare_batch`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from feature_platform.compat.pandas_internals import column_lists
from feature_platform.derive.pandera_schema import field_rules
from feature_platform.dtypes import fits_int64
from feature_platform.push import _TS_MAX, _TS_MIN, MAX_CLOCK_SKEW, SMALL_BATCH, _parse
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.landing import _json_value
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP

_SKEW_NS = MAX_CLOCK_SKEW // timedelta(microseconds=1) * 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NO = object()  # a cell this module does not judge: the batch goes to `prepare_batch`


@dataclass
class DirectRows:
    """The accepted rows of a batch, deduped on (key, event time), in row order."""

    spec: FeatureViewSpec
    keys: list  # entity values (int or str)
    stamps: list[int]  # event times, ns since the epoch (UTC), floored to the microsecond
    values: dict[str, list]  # feature -> values, as the accepted frame's dtype gives them back (`tolist`)
    created: pd.Timestamp  # the batch's created_timestamp (UTC)
    received: int
    duplicates: int

    def __len__(self) -> int:
        return len(self.keys)

    def log_json(self) -> str:
        """`rows_json` of the accepted frame (the direct-log entry), written from the lists."""
        key, created = self.spec.entity.join_key, self.created.isoformat()
        names = [f.name for f in self.spec.fields]
        rows = [{key: k, EVENT_TIMESTAMP: _iso(t), **dict(zip(names, v)), CREATED_TIMESTAMP: created}
                for k, t, *v in zip(self.keys, self.stamps, *(self.values[n] for n in names))]
        return json.dumps(rows, default=_json_value)

    def frame(self) -> pd.DataFrame:
        """The accepted frame, as `prepare_batch` builds it (for the paths that take a frame)."""
        spec, n = self.spec, len(self.keys)
        key = spec.entity.join_key
        return pd.DataFrame({
            key: _array(self.keys, spec.entity.dtype),
            EVENT_TIMESTAMP: pd.DatetimeIndex(np.array(self.stamps, dtype="int64").view("M8[ns]")).tz_localize("UTC").array,
            **{f.name: _array(self.values[f.name], f.dtype) for f in spec.fields},
            CREATED_TIMESTAMP: pd.array(np.full(n, self.created.tz_convert(None).asm8),
                                        dtype=pd.DatetimeTZDtype(self.created.unit, "UTC")),
        })

    @property
    def newest_ns(self) -> int:
        return max(self.stamps)


def prepare_rows(spec: FeatureViewSpec, batch, now: datetime | None = None) -> DirectRows | None:
    """The rows `prepare_batch(spec, batch, now)` accepts, when it accepts every row of this small batch
    (a list of row dicts, or a DataFrame with text column names); None for any other batch."""
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    columns = _columns(spec, batch)
    if columns is None:
        return None
    key = spec.entity.join_key
    latest = now.value + _SKEW_NS
    keys = [_cell(spec.entity.dtype, v) for v in columns[key]]
    stamps = [_stamp(v, latest) for v in columns[EVENT_TIMESTAMP]]
    if _NO in keys or _NO in stamps:
        return None
    values = {}
    for f in spec.fields:
        cells = [_cell(f.dtype, v) for v in columns[f.name]]
        if _NO in cells:
            return None
        typed = _array(cells, f.dtype)
        for rule in field_rules(f):
            if not np.asarray(rule.holds(typed), dtype=bool).all():
                return None
        values[f.name] = typed.tolist() if f.dtype == "float32" else cells
    last = {}
    for i, pair in enumerate(zip(keys, stamps)):
        last[pair] = i
    rows = sorted(last.values())
    n = len(keys)
    if len(rows) < n:
        keys, stamps = [keys[i] for i in rows], [stamps[i] for i in rows]
        values = {name: [column[i] for i in rows] for name, column in values.items()}
    return DirectRows(spec, keys, stamps, values, now.tz_convert("UTC"), n, n - len(rows))


def _columns(spec: FeatureViewSpec, batch) -> dict[str, list] | None:
    """The view's columns of `batch` as lists of Python values (None when a column is missing)."""
    wanted = [spec.entity.join_key, EVENT_TIMESTAMP, *spec.feature_names]
    if isinstance(batch, pd.DataFrame):
        columns = batch.columns
        if not 0 < len(batch) <= SMALL_BATCH or not columns.is_unique or any(c not in columns for c in wanted):
            return None
        return column_lists(batch, wanted)
    if not isinstance(batch, list) or not 0 < len(batch) <= SMALL_BATCH:
        return None
    for row in batch:  # keys that are all text, and every wanted one present
        if not isinstance(row, dict) or any(type(k) is not str for k in row) or any(c not in row for c in wanted):
            return None
    return {c: [row[c] for row in batch] for c in wanted}


def _cell(dtype: str, v):
    """`v` as the typed value `prepare_batch` accepts for `dtype`, or _NO for anything else (nulls included)."""
    if dtype == "int64":
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and fits_int64(int(v)):
            return int(v)
        return _NO
    if dtype in ("float32", "float64"):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            return _NO
        try:
            x = float(v)
        except OverflowError:
            return _NO
        return x if math.isfinite(x) else _NO
    if dtype == "bool":
        return bool(v) if isinstance(v, (bool, np.bool_)) else _NO
    if dtype == "string":
        return v if isinstance(v, str) else _NO
    return _NO


def _array(values: list, dtype: str) -> np.ndarray:
    """`values` as `prepare_batch` types them (floats beyond float32 become infinite: the `finite` rule)."""
    if dtype in ("float32", "float64"):
        with np.errstate(over="ignore"):
            return np.array(values, dtype="float64").astype(dtype)
    if dtype == "string":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.array(values, dtype="int64" if dtype == "int64" else bool)


def _stamp(v, latest: int):
    """`v` as `prepare_batch`'s event time (ns, floored to the microsecond), or _NO (unusable, naive, out of
    range, too far in the future)."""
    p = _parse(v)
    if p is None or p.tzinfo is None or not _TS_MIN <= p <= _TS_MAX:
        return _NO
    ns = p.as_unit("ns").value
    ns -= ns % 1000
    return ns if ns <= latest else _NO


def _iso(ns: int) -> str:
    """`pd.Timestamp(ns, tz="UTC").isoformat()` for a time floored to the microsecond."""
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat()
