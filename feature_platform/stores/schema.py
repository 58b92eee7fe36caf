"""Spec -> storage schemas (Arrow and PostgreSQL), shared by the offline stores."""

from __future__ import annotations

import pyarrow as pa

from feature_platform.dtypes import DTYPES, arrow_type
from feature_platform.spec import FeatureViewSpec
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP


def arrow_schema(spec: FeatureViewSpec, reading: bool = False) -> pa.Schema:
    """The offline table's Arrow schema. Writes enforce each field's nullability; with `reading`, feature
    columns are nullable, because a field added in place (an additive change) is null in the partitions
    written before it existed."""
    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field(spec.entity.join_key, arrow_type(spec.entity.dtype), nullable=False),
            *(pa.field(f.name, arrow_type(f.dtype), nullable=f.nullable or reading) for f in spec.fields),
            pa.field(EVENT_TIMESTAMP, ts, nullable=False),
            pa.field(CREATED_TIMESTAMP, ts, nullable=False),
        ]
    )


def sql_columns(spec: FeatureViewSpec) -> list[tuple[str, str]]:
    return [
        (spec.entity.join_key, DTYPES[spec.entity.dtype].sql + " NOT NULL"),
        *((f.name, DTYPES[f.dtype].sql + ("" if f.nullable else " NOT NULL")) for f in spec.fields),
        (EVENT_TIMESTAMP, "TIMESTAMPTZ NOT NULL"),
        (CREATED_TIMESTAMP, "TIMESTAMPTZ NOT NULL"),
    ]
