"""Feast's SQLite online table written directly: the embedded profile's fast path.

Feast's `write_to_online_store` builds one protobuf per row in Python and upserts every (entity,
feature) cell on its own (~8k rows/s), and it has no newest-wins: the platform had to read the stored
timestamps first, which is also a race between two writers. This writer produces the same rows
(entity key bytes, feature name, serialized Value, value_text, event_ts and created_ts as Feast's
sqlite3 adapter stores them: see `feast_format/test_sqlite_format.py`), encodes them per column (`codec.py`), and upserts them in one
transaction, an `executemany` per slice of rows in key order (one statement per entity, writing its row of each feature) whose
`ON CONFLICT ... WHERE` keeps the newer value inside SQLite: an older write never replaces a newer one, ties rewrite, and concurrent writers cannot
interleave a read and a write.
Stock Feast reads the table as its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

import numpy as np
import pandas as pd

from feature_platform.dtypes import DTYPES
from feature_platform.feast_format import codec as fmt
from feature_platform.spec import FeatureViewSpec
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP

_COLUMNS = "entity_key, feature_name, value, value_text, event_ts, created_ts"


@lru_cache(maxsize=64)
def _upsert(table: str, features: tuple[str, ...]) -> str:
    """The upsert of one entity's rows, one per feature: parameters (entity key, then each feature's value and
    value_text, then event_ts and created_ts). Bound once per entity instead of once per (entity, feature)
    cell: binding, not SQLite's B-tree, was most of the cost (552k cells: 1.4 s as cells, 0.8 s by entity)."""
    n = len(features)
    cells = ", ".join(f"(?1, '{name.replace(chr(39), chr(39) * 2)}', ?{2 + 2 * j}, ?{3 + 2 * j}, ?{2 * n + 2}, ?{2 * n + 3})"
                      for j, name in enumerate(features))
    return (
        f'INSERT INTO "{table}" ({_COLUMNS}) VALUES {cells} '
        "ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
        "value_text = excluded.value_text, event_ts = excluded.event_ts, created_ts = excluded.created_ts "
        f'WHERE excluded.event_ts >= "{table}".event_ts'
    )


# Rows encoded and bound at a time, in key order. A row's cells are ~14 Python objects (its key, each feature's
# serialized value and text, its times): the whole table's at once grew the process by ~110 MB at 100k entities,
# in proportion to them; a slice's are a few MB, in the same time.
WRITE_SLICE_ROWS = 16_384


def _cells(rows: pd.DataFrame, fields, keys: list[bytes]) -> list[list]:
    """The upsert's parameter columns of `rows` (`keys`: their entity keys): the key, each field's (sorted by name)
    serialized value and text, the event and created times."""
    stamps = _sqlite_timestamps(rows[EVENT_TIMESTAMP])
    created = _sqlite_timestamps(rows[CREATED_TIMESTAMP]) if CREATED_TIMESTAMP in rows else [None] * len(rows)
    return [keys, *(column for f in fields for column in (fmt.encode_values(rows[f.name], f.dtype),
                                                          value_texts(rows[f.name], f.dtype))), stamps, created]


def _key_order(keys: list[bytes], times_ns: Sequence[int] | None = None) -> list[int]:
    """The rows' positions in primary-key order: SQLite's B-tree then appends instead of seeking (2-3x faster on
    100k entities). Rows of the same entity are written in the order of `times_ns` (their event times in ns,
    given when an entity has several rows), else in their own: the last one wins. The table keeps whole seconds,
    so two rows of one second tie there, and without this order the older of them could be the one kept."""
    if times_ns is None:
        return sorted(range(len(keys)), key=keys.__getitem__)
    return sorted(range(len(keys)), key=lambda i: (keys[i], times_ns[i]))  # stable: equal times keep theirs


def _one_row_per_entity(keys: pd.Series) -> bool:
    """Whether no entity has two rows. A computed partition's integer keys are strictly ascending, which one
    vectorized comparison proves (~0.1 ms for 92k rows, where hashing them takes ~2.7); anything else is hashed."""
    values = keys.to_numpy()
    if values.dtype.kind in "iu" and bool(np.all(values[1:] > values[:-1])):
        return True
    return keys.is_unique


def _in_order(columns: list[list], order: list[int]) -> Iterator[tuple]:
    """Each row's parameter tuple (its item of every column), the rows in `order`, made one at a time as SQLite
    binds them: 100k entities' tuples made at once were ~18 MB of small objects, which left Python's object
    arenas fragmented (and the process larger) after every range run's sync."""
    if len(order) == 1:
        return iter([tuple(column[order[0]] for column in columns)])
    pick = itemgetter(*order)
    return zip(*(pick(column) for column in columns))


class SqliteFeatures:
    """Newest-wins writes of feature rows into Feast's SQLite online store at `path`."""

    def __init__(self, path: Path, project: str):
        self.path = Path(path)
        self.project = project
        self._conn: tuple[int, sqlite3.Connection] | None = None  # (pid, connection) of the low-latency path
        self._lock = threading.Lock()

    def table(self, view: str) -> str:
        return f"{self.project}_{view}"  # Feast's `compute_table_id` (online view versioning off)

    def write(self, spec: FeatureViewSpec, rows: pd.DataFrame, view: str | None = None) -> int:
        """Write `rows` (entity, features, event_timestamp); returns how many entity rows were written."""
        if rows.empty:
            return 0
        keys = fmt.entity_keys(spec.entity.join_key, spec.entity.dtype, rows[spec.entity.join_key], project="")
        times = None if _one_row_per_entity(rows[spec.entity.join_key]) else \
            pd.DatetimeIndex(rows[EVENT_TIMESTAMP]).as_unit("ns").asi8.tolist()
        order = _key_order(keys, times)
        fields = sorted(spec.fields, key=lambda f: f.name)
        upsert = _upsert(self.table(view or spec.name), tuple(f.name for f in fields))
        with sqlite3.connect(self.path, timeout=60) as conn:  # one transaction: every slice lands, or none
            conn.execute("PRAGMA cache_size = -16384")  # 16 MB of pages: rows arrive in key order, so the B-tree is walked once
            before = conn.total_changes
            for start in range(0, len(order), WRITE_SLICE_ROWS):
                at = order[start:start + WRITE_SLICE_ROWS]
                conn.executemany(upsert, zip(*_cells(rows.take(at), fields, [keys[i] for i in at])))  # rows made as bound
            changed = conn.total_changes - before
        conn.close()
        return changed // len(spec.fields)

    def write_rows(self, spec: FeatureViewSpec, keys: list, stamps_ns: list[int], values: dict[str, list],
                   created_ns: int, before: Sequence[tuple[str, tuple]] = (), after: Sequence[tuple[str, tuple]] = ()
                   ) -> int:
        """`write` of rows given as lists (entity values, event times in ns, per feature non-null Python values: the
        low-latency path's rows, no frame), in ONE transaction with the statements `before` and `after` (the
        direct log's append, the watermark): all of them land, or none. Returns how many entity rows were written.

        One connection per process, in WAL mode with synchronous=NORMAL: a commit writes the WAL without an
        fsync (a power loss may lose the newest commits, never half of one: as durable as the landing directory's
        un-synced files the log used to be, which the drain re-writes online anyway)."""
        keys_b = fmt.entity_keys(spec.entity.join_key, spec.entity.dtype, keys, project="")
        stamps = [_local_seconds(ns) for ns in stamps_ns]
        created = _local_seconds(created_ns)
        fields = sorted(spec.fields, key=lambda f: f.name)
        columns = [keys_b, *(column for f in fields for column in (
            fmt.encode_list(values[f.name], f.dtype),
            [str(v) for v in values[f.name]] if f.dtype != "bool" else [str(bool(v)) for v in values[f.name]])),
            stamps, [created] * len(keys_b)]
        order = _key_order(keys_b, stamps_ns if len(set(keys_b)) < len(keys_b) else None)
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in before:
                    conn.execute(sql, params)
                start = conn.total_changes
                conn.executemany(_upsert(self.table(spec.name), tuple(f.name for f in fields)),
                                 _in_order(columns, order))
                changed = conn.total_changes - start
                for sql, params in after:
                    conn.execute(sql, params)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return changed // len(spec.fields)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._conn[0] != os.getpid():  # a forked child opens its own
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode = WAL")  # the file's mode from now on; readers keep working
            except sqlite3.OperationalError:
                pass  # another connection holds a lock: stay in the current mode
            conn.execute("PRAGMA synchronous = NORMAL")
            self._conn = (os.getpid(), conn)
        return self._conn[1]


def _local_seconds(ns: int) -> int:
    """`_sqlite_timestamps` of one time in ns: Feast's adapter reads the naive UTC time as local time."""
    return int((_EPOCH + timedelta(microseconds=ns // 1000)).timestamp())


_EPOCH = datetime(1970, 1, 1)  # naive, as Feast's adapter sees a UTC time


def value_texts(values: pd.Series, dtype: str) -> list:
    """Feast's `value_text` column: `str()` of the value as read back from the proto, None for a null."""
    if dtype in ("float32", "float64"):  # float32 cells print as the Python float the proto gives back
        arr = pd.to_numeric(values).to_numpy(dtype=np.float32 if dtype == "float32" else np.float64, na_value=np.nan)
        return [None if v != v else str(v) for v in arr.tolist()]
    convert = DTYPES[dtype].python  # each distinct value's text made once (counts and names repeat a lot)
    return fmt.by_distinct(values, lambda v: str(convert(v)), null=None)


def _sqlite_timestamps(stamps: pd.Series) -> list[int]:
    """What Feast's registered sqlite3 adapter stores for a timestamp: `int(naive_utc.timestamp())`, whole
    seconds (a naive datetime's `timestamp()` reads it as local time, as Feast's does)."""
    codes, uniques = pd.factorize(fmt.utc_times(stamps))
    table = np.array([int(u.to_pydatetime().replace(tzinfo=None).timestamp()) for u in uniques], dtype=object)
    return table[codes].tolist()
