"""Spec -> storage schemas (Arrow and PostgreSQL), shared by the offline stores."""

from __future__ import annotations

import pyarrow as pa

from feature_platform.compute.window_aggregate import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feature_platform.spec import FeatureViewSpec

_ARROW = {"int64": pa.int64(), "float32": pa.float32(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_()}
_SQL = {"int64": "BIGINT", "float32": "REAL", "float64": "DOUBLE PRECISION", "string": "TEXT", "bool": "BOOLEAN"}


def arrow_schema(spec: FeatureViewSpec, reading: bool = False) -> pa.Schema:
    """The offline table's Arrow schema. Writes enforce each field's nullability; with `reading`, feature
    columns are nullable, because a field added in place (an additive change) is null in the partitions
    written before it existed."""
    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field(spec.entity.join_key, _ARROW[spec.entity.dtype], nullable=False),
            *(pa.field(f.name, _ARROW[f.dtype], nullable=f.nullable or reading) for f in spec.fields),
            pa.field(EVENT_TIMESTAMP, ts, nullable=False),
            pa.field(CREATED_TIMESTAMP, ts, nullable=False),
        ]
    )


def sql_columns(spec: FeatureViewSpec) -> list[tuple[str, str]]:
    return [
        (spec.entity.join_key, _SQL[spec.entity.dtype] + " NOT NULL"),
        *((f.name, _SQL[f.dtype] + ("" if f.nullable else " NOT NULL")) for f in spec.fields),
        (EVENT_TIMESTAMP, "TIMESTAMPTZ NOT NULL"),
        (CREATED_TIMESTAMP, "TIMESTAMPTZ NOT NULL"),
    ]

# Dtypes of feature columns handed to users (training sets and online reads alike): nullable, so a
# missing value never turns an int column into floats.
SERVING_DTYPE = {"int64": "Int64", "float32": "float32", "float64": "float64", "string": "object", "bool": "boolean"}
