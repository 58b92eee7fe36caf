"""Feast's SQLite online table written directly: the embedded profile's fast path.

Feast's `write_to_online_store` builds one protobuf per row in Python and upserts every (entity,
feature) cell on its own (~8k rows/s), and it has no newest-wins: the platform had to read the stored
timestamps first, which is also a race between two writers. This writer produces the same rows
(entity key bytes, feature name, serialized Value, value_text, event_ts and created_ts as Feast's
sqlite3 adapter stores them: see `feast_format/test_sqlite_format.py`), encodes them per column (`codec.py`), and upserts them in one
`executemany` whose `ON CONFLICT ... WHERE` keeps the newer value inside SQLite: an older write never
replaces a newer one, ties rewrite, and concurrent writers cannot interleave a read and a write.
Stock Feast reads the table as its own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from feature_platform.dtypes import DTYPES
from feature_platform.feast_format import codec as fmt
from feature_platform.spec import FeatureViewSpec
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP

_COLUMNS = "entity_key, feature_name, value, value_text, event_ts, created_ts"
_UPSERT = (
    'INSERT INTO "{table}" (' + _COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
    "value_text = excluded.value_text, event_ts = excluded.event_ts, created_ts = excluded.created_ts "
    'WHERE excluded.event_ts >= "{table}".event_ts'
)


class SqliteFeatures:
    """Newest-wins writes of feature rows into Feast's SQLite online store at `path`."""

    def __init__(self, path: Path, project: str):
        self.path = Path(path)
        self.project = project

    def table(self, view: str) -> str:
        return f"{self.project}_{view}"  # Feast's `compute_table_id` (online view versioning off)

    def write(self, spec: FeatureViewSpec, rows: pd.DataFrame, view: str | None = None) -> int:
        """Write `rows` (entity, features, event_timestamp); returns how many entity rows were written."""
        if rows.empty:
            return 0
        keys = fmt.entity_keys(spec.entity.join_key, spec.entity.dtype, rows[spec.entity.join_key], project="")
        stamps = _sqlite_timestamps(rows[EVENT_TIMESTAMP])
        created = _sqlite_timestamps(rows[CREATED_TIMESTAMP]) if CREATED_TIMESTAMP in rows else [None] * len(rows)
        fields = sorted(spec.fields, key=lambda f: f.name)
        values = [fmt.encode_values(rows[f.name], f.dtype) for f in fields]
        texts = [value_texts(rows[f.name], f.dtype) for f in fields]
        # In primary-key order: SQLite's B-tree then appends instead of seeking (2-3x faster on 100k entities).
        order = sorted(range(len(keys)), key=keys.__getitem__)
        cells = ((keys[i], f.name, values[j][i], texts[j][i], stamps[i], created[i]) for i in order for j, f in enumerate(fields))
        with sqlite3.connect(self.path, timeout=60) as conn:
            conn.execute("PRAGMA cache_size = -65536")  # 64 MB for this connection's index pages
            before = conn.total_changes
            conn.executemany(_UPSERT.format(table=self.table(view or spec.name)), cells)
            changed = conn.total_changes - before
        conn.close()
        return changed // len(spec.fields)


def value_texts(values: pd.Series, dtype: str) -> list:
    """Feast's `value_text` column: `str()` of the value as read back from the proto, None for a null."""
    if dtype in ("float32", "float64"):  # float32 cells print as the Python float the proto gives back
        arr = pd.to_numeric(values).to_numpy(dtype=np.float32 if dtype == "float32" else np.float64, na_value=np.nan)
        return [None if v != v else str(v) for v in arr.tolist()]
    convert = DTYPES[dtype].python
    return [str(convert(v)) if ok else None for v, ok in zip(values.tolist(), values.notna().tolist())]


def _sqlite_timestamps(stamps: pd.Series) -> list[int]:
    """What Feast's registered sqlite3 adapter stores for a timestamp: `int(naive_utc.timestamp())`, whole
    seconds (a naive datetime's `timestamp()` reads it as local time, as Feast's does)."""
    codes, uniques = pd.factorize(pd.to_datetime(stamps, utc=True))
    table = np.array([int(u.to_pydatetime().replace(tzinfo=None).timestamp()) for u in uniques], dtype=object)
    return table[codes].tolist()
