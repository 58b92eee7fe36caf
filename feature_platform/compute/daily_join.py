"""Point-in-time join of a daily batch view read straight from its partition files.

A daily view's partition file holds at most one row per key, every row stamped with the partition's timestamp
(a UTC midnight). An entity row at t sees exactly the partitions stamped within `[t - ttl, t]`, and its answer
is the newest of them that holds its key: the rows `point_in_time`'s daily plan picks (property-tested equal).
So each file is read once, its key column and the wanted features only (strings as dictionaries), and only
the rows some entity row asks for are taken from it: no hash join of every stored row against the entity rows,
which was ~2/3 of DuckDB's time for a year of partitions. A file sorted by key (as the platform writes them)
is searched, not hashed. Files are read on a few threads: pyarrow decodes without the GIL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Reading threads: decoding is most of the work and runs without the GIL; more than the cores only adds memory.
READ_THREADS = max(1, min(4, os.cpu_count() or 1))


class Unsupported(Exception):
    """The entity frame or the files do not fit this plan (a time past int64 nanoseconds, a column type the
    declared one cannot be cast from): the caller uses the general plan."""


def join_partitions(keys: pd.Series, times: pd.Series, partitions: Sequence[tuple[pd.Timestamp, str]],
                    join_key: str, ttl: timedelta, features: Mapping[str, pa.DataType]) -> pa.Table:
    """For each entity row (`keys`, tz-aware `times`): the `features` of the newest partition stamped within
    `[t - ttl, t]` that has a row for its key, else nulls. `partitions`: (timestamp of every row of the file,
    path). One column per feature, of its declared type, in the entity rows' order."""
    t = _nanoseconds(times)
    order = np.argsort(t, kind="stable")
    t_sorted = t[order]
    ttl_ns = pd.Timedelta(ttl).value
    key_array = _key_array(keys)
    jobs = []  # (partition, entity rows that can see it)
    for stamp, path in sorted(partitions, key=lambda p: p[0]):
        lo = np.searchsorted(t_sorted, stamp.value, "left")
        hi = np.searchsorted(t_sorted, stamp.value + ttl_ns, "right")
        if lo < hi:
            jobs.append((path, order[lo:hi]))

    def read(job):
        return _read_rows(job[0], join_key, key_array, job[1], features)

    n = len(t)
    picked = np.full(n, -1, np.int64)  # per entity row: its row in the concatenated taken rows, newest wins
    chunks: dict[str, list[pa.Array]] = {f: [] for f in features}
    taken = 0
    with ThreadPoolExecutor(READ_THREADS) as pool:
        for rows, columns in pool.map(read, jobs):  # in timestamp order: a later partition overwrites
            picked[rows] = np.arange(taken, taken + len(rows))
            taken += len(rows)
            for f, column in columns.items():
                chunks[f].append(column)
    index = pa.array(picked, mask=picked < 0)
    return pa.table({f: _concat(chunks[f], features[f]).take(index) for f in features})


def _read_rows(path: str, join_key: str, key_array: pa.Array, rows: np.ndarray,
               features: Mapping[str, pa.DataType]) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """The entity `rows` whose key the file holds, and those rows' features (declared types)."""
    file = pq.ParquetFile(path)
    present = set(file.schema_arrow.names)
    if join_key not in present:
        raise Unsupported(f"{path} has no column {join_key!r}")
    strings = [f for f, t in features.items() if f in present and (pa.types.is_string(t) or pa.types.is_large_string(t))]
    if strings:  # as dictionaries, as they are stored: only the rows taken get their strings
        file = pq.ParquetFile(path, metadata=file.metadata, read_dictionary=strings)
    wanted = [f for f in features if f in present]
    table = file.read(columns=[join_key, *wanted], use_threads=False)
    positions = _positions(table.column(join_key), key_array.take(pa.array(rows)))
    hit = positions >= 0
    index = pa.array(positions[hit])
    columns = {}
    for f, declared in features.items():
        if f not in present:  # a field added in place after this partition was written
            columns[f] = pa.nulls(len(index), declared)
            continue
        column = table.column(f).take(index).combine_chunks()
        try:
            columns[f] = column if column.type == declared else column.cast(declared)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise Unsupported(f"{path}: column {f!r} ({column.type}) cannot be read as {declared}: {exc}") from None
    return rows[hit], columns


def _positions(file_keys: pa.ChunkedArray, wanted: pa.Array) -> np.ndarray:
    """Each wanted key's row in the file, -1 where it has none."""
    file_keys = file_keys.chunk(0) if file_keys.num_chunks == 1 else file_keys.combine_chunks()  # no copy of one
    if pa.types.is_null(file_keys.type):  # no row (or only null keys): nothing to find
        return np.full(len(wanted), -1, np.int64)
    try:  # the file's type on both sides: numpy would compare int64 with uint64 as floats
        asked = wanted if wanted.type == file_keys.type else wanted.cast(file_keys.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise Unsupported(f"keys of type {wanted.type} cannot be looked up in a column of {file_keys.type}: {exc}") \
            from None
    if pa.types.is_integer(file_keys.type) and not file_keys.null_count and not asked.null_count:
        stored = file_keys.to_numpy()
        if len(stored) < 2 or bool(np.all(stored[1:] > stored[:-1])):  # sorted and unique: binary search
            keys = asked.to_numpy()
            at = np.searchsorted(stored, keys)
            inside = at < len(stored)
            found = np.zeros(len(keys), bool)
            found[inside] = stored[at[inside]] == keys[inside]
            return np.where(found, at, -1)
    return pc.index_in(asked, value_set=file_keys).fill_null(-1).to_numpy().astype(np.int64, copy=False)


def _key_array(keys: pd.Series) -> pa.Array:
    try:
        array = pa.array(keys, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise Unsupported(f"entity keys cannot be read as Arrow: {exc}") from None
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _nanoseconds(times: pd.Series) -> np.ndarray:
    try:
        return pd.DatetimeIndex(times).tz_convert("UTC").as_unit("ns").asi8
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise Unsupported(f"entity times beyond int64 nanoseconds: {exc}") from None


def _concat(chunks: list[pa.Array], declared: pa.DataType) -> pa.Array:
    return pa.concat_arrays(chunks) if chunks else pa.array([], declared)


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Nullable where a null would turn a column's type (ints and bools stay exact), as the serving dtypes are."""
    mapping = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}  # the declared types' (dtypes.DTYPES)
    return table.to_pandas(types_mapper=mapping.get)
