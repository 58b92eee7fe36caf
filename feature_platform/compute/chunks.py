"""What both compute engines share: the chunk of feature rows they return, the spec's dtypes, integer overflow.

The pandas engine (`window_aggregate`, `rolling_window`) and the Spark engine build on this module; it builds
on none of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from feature_platform.dtypes import INT64_MAX, INT64_MIN, pandas_dtype
from feature_platform.errors import AggregationOverflowError
from feature_platform.sources.rows import _cut
from feature_platform.spec import FeatureViewSpec


@dataclass
class DayChunk:
    """The feature rows of several partition days in one frame: day by day, each day's sorted by key.
    `bounds[i]:bounds[i + 1]` are the rows of `days[i]`; `rows(i)` is a view of them."""

    days: list[date]
    frame: pd.DataFrame
    bounds: np.ndarray

    def rows(self, i: int) -> pd.DataFrame:
        part = self.frame.iloc[self.bounds[i]:self.bounds[i + 1]]
        part.index = pd.RangeIndex(len(part))
        return part

    def __iter__(self) -> Iterator[tuple[date, pd.DataFrame]]:
        return ((day, self.rows(i)) for i, day in enumerate(self.days))


def empty_chunk() -> DayChunk:
    return DayChunk([], pd.DataFrame(), np.zeros(1, dtype=np.int64))


def may_overflow(values: np.ndarray) -> bool:
    """Whether some sum of the integers `values` could leave int64. Never when `len * max|value|` fits, which
    costs a min and a max; only then do the engines take their exact (slower) path."""
    if len(values) == 0:
        return False
    return max(-int(values.min()), int(values.max())) * len(values) > INT64_MAX


def overflow_error(spec: FeatureViewSpec, day: date, feature: str, entity, value: int,
                   count: int) -> AggregationOverflowError:
    """The error both engines raise for the first value (in day, then key, then spec order) that does not fit
    its feature's dtype; `count`: how many values of that day overflow."""
    agg = next(a for a in spec.aggregation.aggs if a.feature == feature)
    more = f" ({count} values of this partition overflow)" if count > 1 else ""
    return AggregationOverflowError(
        f"feature view {spec.name!r}, partition {day}: feature {feature!r} ({agg.fn} of {agg.column!r}) of "
        f"{spec.entity.join_key}={_cut(entity)} is {value}, outside {spec.field(feature).dtype} "
        f"({INT64_MIN}..{INT64_MAX}){more}; the partition fails and nothing is written for it",
        view=spec.name, partition=day.isoformat(), feature=feature, entity=entity, value=value)


def cast_to_spec(spec: FeatureViewSpec, df: pd.DataFrame, copy: bool = True) -> pd.DataFrame:
    """`df` with the key and features in the spec's dtypes (strings as objects with None for nulls)."""
    df = df.copy() if copy else df
    df[spec.entity.join_key] = df[spec.entity.join_key].astype(pandas_dtype(spec.entity.dtype))
    for f in spec.fields:
        if f.dtype == "string":
            column = df[f.name].astype(object)
            nulls = column.isna()
            df[f.name] = column.where(~nulls, None) if nulls.any() else column
        elif f.dtype.startswith("int") and df[f.name].isna().any():
            df[f.name] = df[f.name].astype("Int64")  # keep nulls visible to validation
        else:
            df[f.name] = df[f.name].astype(pandas_dtype(f.dtype))
    return df


def cast_array(values, dtype: str) -> np.ndarray | None:
    """What `cast_to_spec` makes of a column of `values` (spec dtype `dtype`) when `values` is a numpy array it casts
    without pandas: numbers to a numeric dtype, objects to strings (nulls as None); None otherwise (a frame decides:
    e.g. a nullable integer, or NaN in an integer column, which `cast_to_spec` keeps as a null)."""
    if not isinstance(values, np.ndarray):
        return None
    kind = values.dtype.kind
    if dtype == "string":
        if kind != "O":
            return None
        nulls = pd.isna(values)
        if nulls.any():
            values = values.copy()
            values[nulls] = None
        return values
    target = np.dtype(pandas_dtype(dtype))
    if dtype == "bool":
        castable = kind == "b"
    elif dtype.startswith("int") and kind == "f":
        castable = bool(np.isfinite(values).all())  # NaN: kept as a null; inf: pandas refuses
    else:
        castable = kind in "iub" or (kind == "f" and target.kind == "f")
    if not castable:
        return None
    return values if values.dtype == target else values.astype(target)
