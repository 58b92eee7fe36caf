"""Spec -> Pandera schema: the gate every feature row passes before any write.

A field's constraints are declared once, as `field_rules`: Pandera runs them on computed partitions, and
the push path (`feature_platform.push`) runs the very same functions on pushed rows, so the two can never
disagree on a value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera import dtypes
from pandera.engines import pandas_engine

from feature_platform.dtypes import pandera_dtype
from feature_platform.spec import FeatureViewSpec, Field
from feature_platform.vocabulary import EVENT_TIMESTAMP


@dataclass(frozen=True)
class Rule:
    """One constraint of a field. `holds` takes the field's non-null values (a numpy array of its dtype)
    and returns a boolean array, True where a value passes; `check` is its name in failure reports."""

    check: str
    holds: Callable[[np.ndarray], np.ndarray]


@lru_cache(maxsize=1024)
def field_rules(f: Field) -> tuple[Rule, ...]:
    """The constraints of `f`, in the order they are reported (named as Pandera's built-in checks)."""
    rules = []
    if f.ge is not None:
        rules.append(Rule(f"greater_than_or_equal_to({f.ge})", lambda v, b=f.ge: v >= b))
    if f.le is not None:
        rules.append(Rule(f"less_than_or_equal_to({f.le})", lambda v, b=f.le: v <= b))
    if f.isin is not None:
        rules.append(Rule(f"isin({list(f.isin)})", lambda v, allowed=frozenset(f.isin): np.fromiter(
            (x in allowed for x in v), dtype=bool, count=len(v))))
    if f.dtype.startswith("float"):
        rules.append(Rule("finite", lambda v: ~np.isinf(v)))  # NaN is a null, judged by `nullable`
    return tuple(rules)


@dtypes.immutable
class _Str(pandas_engine.NpString):
    """Pandera's `str` dtype with its check vectorised: a column that pandas infers as all strings (nulls aside)
    passes at once; any other falls back to Pandera's own check (a Python call per value), so failures are the
    same cases, named the same (`dtype('str')`)."""

    def check(self, pandera_dtype, data_container=None):
        if data_container is not None and isinstance(data_container, pd.Series) \
                and pd.api.types.infer_dtype(data_container, skipna=True) in ("string", "empty"):
            return True
        return super().check(pandera_dtype, data_container)

    def __str__(self) -> str:
        return "str"


def _dtype(dtype: str):
    name = pandera_dtype(dtype)
    return _Str() if name == "str" else name


def pandera_schema(spec: FeatureViewSpec, unique: bool = True, timestamp_unit: str | None = None) -> pa.DataFrameSchema:
    """Columns, dtypes and constraints of `spec`'s rows; the entity key + timestamp must be unique (`unique=False`:
    that check left out, for rows `ordered_unique` has proved unique). The feature timestamp is coerced to
    datetime64[ns, UTC]; with `timestamp_unit` (from `uncoerced_unit`), it is checked as UTC in that unit and
    nothing is coerced: the rows can be validated in place, without a copy."""
    key = spec.entity.join_key
    columns = {
        key: pa.Column(_dtype(spec.entity.dtype), nullable=False),
        **{f.name: pa.Column(_dtype(f.dtype), checks=_checks(f), nullable=f.nullable) for f in spec.fields},
        EVENT_TIMESTAMP: pa.Column(f"datetime64[{timestamp_unit}, UTC]", nullable=False) if timestamp_unit
        else pa.Column("datetime64[ns, UTC]", nullable=False, coerce=True),
    }
    return pa.DataFrameSchema(
        columns,
        name=spec.name,
        strict=True,
        unique=[key, EVENT_TIMESTAMP] if unique else None,
        report_duplicates="all",
    )


def uncoerced_unit(rows: pd.DataFrame) -> str | None:
    """The unit of `rows`' feature timestamps when coercing them to datetime64[ns, UTC] would change only their
    unit (e.g. "us", as a computed chunk's): zone-aware UTC, not ns, none missing (a failure case then reports the
    coerced value), every one within ns's range (where the coercion could fail). Else None: they are coerced.
    A chunk of 1M rows: ~70 ms of conversion and a copy of the whole frame, for a result nobody used."""
    stamps = rows.get(EVENT_TIMESTAMP)
    if stamps is None or not isinstance(stamps.dtype, pd.DatetimeTZDtype) or str(stamps.dtype.tz) != "UTC" \
            or stamps.dtype.unit == "ns" or stamps.hasnans:
        return None
    if len(stamps) and (stamps.min() < _NS_MIN or stamps.max() > _NS_MAX):
        return None
    return stamps.dtype.unit


_NS_MIN, _NS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")


def ordered_unique(spec: FeatureViewSpec, rows: pd.DataFrame) -> bool:
    """True when `rows` are strictly ascending by (feature timestamp, integer entity key), as a computed chunk of
    days is: then no two share both, which one pass over two columns proves (Pandera's check hashes every
    row). False says nothing: Pandera's check decides, and reports any duplicates as it always has."""
    key = spec.entity.join_key
    if key not in rows or EVENT_TIMESTAMP not in rows:
        return False
    keys, stamps = rows[key], rows[EVENT_TIMESTAMP]
    if not (isinstance(keys.dtype, np.dtype) and keys.dtype.kind in "iu"
            and pd.api.types.is_datetime64_any_dtype(stamps.dtype)) or stamps.isna().any():
        return False
    k, t = keys.to_numpy(), np.asarray(stamps.array.view("i8"))  # the instants (UTC when tz-aware), in its unit
    later = t[1:] > t[:-1]
    return bool(np.all(later | ((t[1:] == t[:-1]) & (k[1:] > k[:-1]))))


def _checks(f: Field) -> list[pa.Check]:
    return [pa.Check(_on_series(r.holds), element_wise=False, name=r.check.split("(")[0], error=r.check)
            for r in field_rules(f)]


def _on_series(holds: Callable[[np.ndarray], np.ndarray]) -> Callable[[pd.Series], pd.Series]:
    return lambda s: pd.Series(np.asarray(holds(s.to_numpy()), dtype=bool), index=s.index)


def constraint_text(f: Field) -> str:
    """Human-readable constraints, for column-schema metadata."""
    parts = []
    if f.ge is not None:
        parts.append(f">= {f.ge:g}")
    if f.le is not None:
        parts.append(f"<= {f.le:g}")
    if f.isin is not None:
        parts.append("in {" + ", ".join(f.isin) + "}")
    return ", ".join(parts)
