"""Spec -> Pandera schema: the gate every feature row passes before any write."""

from __future__ import annotations

import pandera.pandas as pa

from feature_platform.compute.window_aggregate import EVENT_TIMESTAMP
from feature_platform.spec import FeatureViewSpec, Field

_DTYPE = {"int64": "int64", "float32": "float32", "float64": "float64", "string": "str", "bool": "bool"}


def pandera_schema(spec: FeatureViewSpec) -> pa.DataFrameSchema:
    """Columns, dtypes and constraints of `spec`'s rows; the entity key + timestamp must be unique."""
    key = spec.entity.join_key
    columns = {
        key: pa.Column(_DTYPE[spec.entity.dtype], nullable=False),
        **{f.name: pa.Column(_DTYPE[f.dtype], checks=_checks(f), nullable=f.nullable) for f in spec.fields},
        EVENT_TIMESTAMP: pa.Column("datetime64[ns, UTC]", nullable=False, coerce=True),
    }
    return pa.DataFrameSchema(
        columns,
        name=spec.name,
        strict=True,
        unique=[key, EVENT_TIMESTAMP],
        report_duplicates="all",
    )


def _checks(f: Field) -> list[pa.Check]:
    checks = []
    if f.ge is not None:
        checks.append(pa.Check.ge(f.ge))
    if f.le is not None:
        checks.append(pa.Check.le(f.le))
    if f.isin is not None:
        checks.append(pa.Check.isin(list(f.isin)))
    if f.dtype.startswith("float"):
        checks.append(pa.Check(lambda s: ~s.isin([float("inf"), float("-inf")]), element_wise=False, name="finite"))
    return checks


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
