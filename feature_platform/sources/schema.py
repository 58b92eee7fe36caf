"""A declared source's row rules, and the Pandera schema that runs them on the rows the pandas engine reads.

Derived from the `SourceSpec` alone; the Spark engine applies the same rule list (`source_rules`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pandera.pandas as pa

from feature_platform.spec import SourceSpec


def source_rules(source: SourceSpec) -> list[tuple[str, str, object]]:
    """`source`'s row rules as (column, what a breaking value is, rule): first every 'null' (columns not
    declared nullable, and the time), then 'NaN or infinite' floats, then 'negative'/'below x' (`ge`),
    'above x' (`le`) and 'not one of [...]' (`isin`). Pandera runs them for the pandas engine
    (`source_schema`); the Spark engine applies the same list."""
    names = [*source.column_names, source.timestamp_column]
    nulls = [(name, "null", None) for name in names
             if name == source.timestamp_column or not source.column(name).nullable]
    floats = [(c.name, "NaN or infinite", None) for c in source.columns if c.dtype in ("float32", "float64")]
    bounds: list[tuple[str, str, object]] = []
    for c in source.columns:
        if c.ge is not None:
            bounds.append((c.name, "negative" if c.ge == 0 else f"below {c.ge}", ("ge", c.ge)))
        if c.le is not None:
            bounds.append((c.name, f"above {c.le}", ("le", c.le)))
        if c.isin is not None:
            bounds.append((c.name, f"not one of {list(c.isin)}", ("isin", tuple(c.isin))))
    return nulls + floats + bounds


@lru_cache(maxsize=256)
def source_schema(source: SourceSpec) -> pa.DataFrameSchema:
    """The Pandera schema of `source`'s rows: its row rules (`source_rules`), each check named by what a
    breaking value is, so a failure reads "column 'x': 2 negative value(s)". Types are not repeated here: the
    reader casts every file to the declared Arrow types first, naming the file and column it cannot read.
    Floats must be validated as Arrow-backed columns (`pd.ArrowDtype`), where a null and a NaN differ."""
    rules = source_rules(source)
    nullable = {name for name in (*source.column_names, source.timestamp_column)} - {
        name for name, what, _ in rules if what == "null"}
    checks: dict[str, list[pa.Check]] = {name: [] for name in (*source.column_names, source.timestamp_column)}
    for name, what, rule in rules:
        if what == "null":
            continue
        if what == "NaN or infinite":
            checks[name].append(pa.Check(_finite, name="finite", error=what))
        elif rule[0] == "ge":  # a NaN breaks only the finite rule, not a bound (as in Arrow and Spark)
            checks[name].append(pa.Check(lambda v, b=rule[1]: ~(v < b), name="greater_than_or_equal_to", error=what))
        elif rule[0] == "le":
            checks[name].append(pa.Check(lambda v, b=rule[1]: ~(v > b), name="less_than_or_equal_to", error=what))
        else:
            checks[name].append(pa.Check.isin(list(rule[1]), error=what))
    columns = {name: pa.Column(checks=checks[name], nullable=name in nullable) for name in checks}
    return pa.DataFrameSchema(columns, name=f"{source.name} source")


def _finite(values: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(values.to_numpy(dtype="float64")), index=values.index)
