"""The raw sessions log: one row per chat session, read from any Parquet file or directory.

Reads only the requested time range (pyarrow pushes the filter down to row groups and files), so
memory is bounded by the window being computed, never by the size of the log.

Each file is read and checked on its own, in its own physical schema, and only then combined: a file whose
types differ from the others' (naive times next to zone-aware ones, a float count next to an integer one)
is read as what it is, and every error names the file it comes from.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from feature_platform.dtypes import INT64_MAX
from feature_platform.errors import SourceDataError

log = logging.getLogger(__name__)

NAME = "sessions"
TIMESTAMP = "event_timestamp"
SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("session_id", pa.string()),
        (TIMESTAMP, pa.timestamp("us", tz="UTC")),
        ("duration_sec", pa.float64()),
        ("message_count", pa.int64()),
        ("tool_invocations", pa.int64()),
        ("model", pa.string()),
        ("tokens", pa.int64()),
    ]
)


STRING = pd.StringDtype("pyarrow")


def read_sessions(path: str | Path, start: datetime, end: datetime) -> pd.DataFrame:
    """Sessions with `start <= event_timestamp < end`, in the declared schema (timestamps UTC, strings as
    Arrow-backed `string[pyarrow]`).

    Naive timestamps are read as UTC (the schema's documented zone), file by file, so naive and zone-aware
    files may share a directory. Integers of any width and floats holding whole numbers are read as int64.
    A missing or repeated column, a wrong type (text for numbers or numbers for text, a non-timestamp time),
    a file that is not Parquet, and rows with a null (a null time included, whether or not the file has
    statistics), a negative count or duration, a NaN/infinite duration, a fractional or out-of-range count
    or a sub-microsecond time raise `SourceDataError` naming the file, column and sample rows. A session id
    may repeat: `sessions_7d` counts distinct ids, the sums add every row.
    """
    groups: dict[tuple, list[ds.ParquetFileFragment]] = {}
    for fragment in source_files(path):  # files of the same declared types are scanned together (fast)
        physical = fragment.physical_schema
        groups.setdefault(tuple(physical.field(name).type for name in SCHEMA.names), []).append(fragment)
    tables = [_read_files(fragments, start, end) for fragments in groups.values()]
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    # Strings stay in Arrow buffers (pandas' "string[pyarrow]"): a Python object per session id would
    # cost ~4x the memory and the conversion time, and factorizing them is faster.
    return table.to_pandas(types_mapper={pa.string(): STRING}.get)


def source_files(path: str | Path) -> list[ds.ParquetFileFragment]:
    """The Parquet files of the source, by path, each checked (readable, every declared column present once,
    of a compatible type, no null time in its statistics). Files and directories whose names start with '.'
    or '_' are skipped (`_SUCCESS`, `.crc`: the Hadoop/Spark convention); any other file must be Parquet."""
    path = Path(path)
    if not path.exists():
        raise SourceDataError(
            f"sessions source {path} does not exist: set FEATURE_PLATFORM_SESSIONS_PATH to your Parquet "
            "file or directory, or materialize the raw_sessions asset to generate demo data"
        )
    try:
        # The declared schema lists the files without opening them: each one is opened (and named) below.
        dataset = ds.dataset(str(path), format="parquet", schema=SCHEMA)
        fragments = sorted(dataset.get_fragments(), key=lambda fragment: fragment.path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceDataError(f"sessions source {path} cannot be listed: {_reason(exc)}") from exc
    if not fragments:
        raise SourceDataError(f"sessions source {path} holds no Parquet file (names starting with '.' or '_' "
                              "are skipped)")
    for fragment in fragments:
        _check_file(fragment)
    return fragments


def _read_files(fragments: list[ds.ParquetFileFragment], start: datetime, end: datetime) -> pa.Table:
    """The rows in `[start, end)` of files of one physical schema, and their rows without a time, cast to
    `SCHEMA` and checked. On a problem, each file is read on its own to name the first bad one."""
    where = fragments[0].path if len(fragments) == 1 else str(Path(fragments[0].path).parent)
    try:
        return _normalized(_scan(fragments, start, end), where)
    except (SourceDataError, pa.ArrowException, OSError) as exc:
        if len(fragments) > 1:
            for fragment in fragments:
                _read_files([fragment], start, end)
        if isinstance(exc, SourceDataError):
            raise
        raise SourceDataError(f"sessions source {where} cannot be read: {_reason(exc)}") from exc


def _scan(fragments: list[ds.ParquetFileFragment], start: datetime, end: datetime) -> pa.Table:
    first = fragments[0]
    physical = first.physical_schema
    schema = pa.schema([physical.field(name) for name in SCHEMA.names])  # every file's types (one group)
    ts_type = physical.field(TIMESTAMP).type
    column = ds.field(TIMESTAMP)
    # Rows without a time are read wherever they are (a range filter alone drops them, and a file written
    # without statistics does not count them): `_check_values` refuses them.
    wanted = column.is_null()
    if not pa.types.is_null(ts_type):
        wanted = ((column >= _bound(start, ts_type)) & (column < _bound(end, ts_type))) | wanted
    try:
        dataset = ds.FileSystemDataset(fragments, schema, first.format, first.filesystem)
        return dataset.to_table(filter=wanted)
    except (pa.ArrowException, OSError) as exc:
        where = first.path if len(fragments) == 1 else Path(first.path).parent
        raise SourceDataError(f"sessions source {where} cannot be read: {_reason(exc)}") from exc


_CHECKED: set[tuple[str, int, int]] = set()  # (file, mtime_ns, size) whose schema passed: a range run re-reads them


def _check_file(fragment: ds.ParquetFileFragment) -> None:
    try:
        stat = os.stat(fragment.path)
        schema = fragment.physical_schema  # read once: the fragment keeps it for the scan
    except (pa.ArrowException, OSError) as exc:
        raise SourceDataError(f"sessions source {fragment.path} cannot be read as Parquet: {_reason(exc)}") from exc
    key = (fragment.path, stat.st_mtime_ns, stat.st_size)
    if key in _CHECKED:
        return
    _check_columns(schema, Path(fragment.path))
    _check_null_times(fragment)
    if getattr(schema.field(TIMESTAMP).type, "tz", "") is None:  # once per file version, not per read
        log.warning("sessions source %s: %r is timezone-naive; reading it as UTC", fragment.path, TIMESTAMP)
    if len(_CHECKED) > 100_000:
        _CHECKED.clear()
    _CHECKED.add(key)


def _check_null_times(fragment) -> None:
    """A session without a time falls outside every window: refuse the file from its row-group statistics
    when they count nulls (no data read). Without statistics, the rows are found when read (`_scan`)."""
    metadata = fragment.metadata
    # The Parquet (leaf) column, by name: a nested column before it shifts the indices of the Arrow fields.
    leaves = [i for i in range(metadata.num_columns) if metadata.schema.column(i).path == TIMESTAMP]
    nulls = 0
    for i in range(metadata.num_row_groups):
        stats = metadata.row_group(i).column(leaves[0]).statistics if leaves else None
        nulls += stats.null_count if stats is not None and stats.has_null_count else 0
    if nulls:
        raise SourceDataError(f"sessions source {fragment.path}: column {TIMESTAMP!r}: {nulls} null value(s); "
                              "every session needs its time")


def _check_columns(schema: pa.Schema, path: Path) -> None:
    missing = [name for name in SCHEMA.names if name not in schema.names]
    if missing:
        raise SourceDataError(f"sessions source {path}: missing column(s) {missing}; expected {SCHEMA.names}")
    for want in SCHEMA:
        if (n := len(schema.get_all_field_indices(want.name))) > 1:
            raise SourceDataError(f"sessions source {path}: column {want.name!r} appears {n} times; a column "
                                  "needs one name")
        got = schema.field(want.name).type
        if not _compatible(want.type, got):
            expected = "a timestamp" if pa.types.is_timestamp(want.type) else str(want.type)
            raise SourceDataError(f"sessions source {path}: column {want.name!r} has type {got}, expected {expected}")


def _compatible(want: pa.DataType, got: pa.DataType) -> bool:
    """Whether `got` holds `want`'s kind of value: any integer width, or a float holding whole numbers (the
    cast refuses the other rows), for an integer; float32/64 or an integer for a float; but never text or
    bools for numbers, nor numbers for text: Arrow would cast "7" or True to 7 or 1 without a word."""
    if pa.types.is_null(got):
        return True  # an all-null column (e.g. pandas' empty object column): the null check names its rows
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(got)
    if pa.types.is_dictionary(got):
        got = got.value_type
    floats = pa.types.is_float32(got) or pa.types.is_float64(got)  # not float16: Spark cannot read it
    if pa.types.is_integer(want) or pa.types.is_floating(want):
        return pa.types.is_integer(got) or floats
    return pa.types.is_string(got) or pa.types.is_large_string(got) or pa.types.is_string_view(got)


# Casts that can lose information: their rows are refused, never rounded (the Spark engine applies the same rules).
FLOAT_EXACT = 2**53  # pyarrow's safe int -> float64 cast refuses |x| above this


def lossy(got: pa.DataType, want: pa.DataType) -> str | None:
    """What kind of value `got` may hold that `want` cannot: 'non-integer' (float -> int), 'out-of-range'
    (uint64 -> int64, int64 -> float64 beyond 2**53), 'sub-microsecond' (ns -> us), or None (lossless)."""
    if pa.types.is_dictionary(got):
        got = got.value_type
    if pa.types.is_integer(want) and pa.types.is_floating(got):
        return "non-integer"
    if pa.types.is_integer(want) and pa.types.is_uint64(got):
        return "out-of-range"
    if pa.types.is_floating(want) and pa.types.is_integer(got) and got.bit_width == 64:
        return "out-of-range"
    if pa.types.is_timestamp(want) and pa.types.is_timestamp(got) and got.unit == "ns":
        return "sub-microsecond"
    return None


def _lossy_mask(values: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    if kind == "non-integer":
        ok = pc.and_kleene(pc.is_finite(values), pc.equal(pc.floor(values), values))
        ok = pc.and_kleene(ok, pc.and_kleene(pc.greater_equal(values, -(2.0**63)), pc.less(values, 2.0**63)))
        return pc.invert(ok)
    if kind == "out-of-range":
        if pa.types.is_uint64(values.type):
            return pc.greater(values, pa.scalar(INT64_MAX, pa.uint64()))
        return pc.greater(pc.abs(pc.cast(values, pa.float64(), safe=False)), float(FLOAT_EXACT))
    nanos = pc.cast(values, pa.int64())  # sub-microsecond: not a multiple of 1000 ns (integer division truncates)
    return pc.not_equal(pc.subtract(nanos, pc.multiply(pc.divide(nanos, 1000), 1000)), 0)


def _normalized(table: pa.Table, file: str) -> pa.Table:
    """The file's rows in `SCHEMA` (naive times as UTC), checked: rows a cast would lose are refused with the
    others (`_check_values`), never truncated or wrapped."""
    lost: list[tuple[str, str, pa.ChunkedArray, pa.ChunkedArray]] = []  # (column, kind, mask, written values)
    columns = []
    for want in SCHEMA:
        values = table[want.name]
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        if pa.types.is_timestamp(values.type) and values.type.tz is None:
            values = pc.assume_timezone(values, "UTC")
        kind = lossy(values.type, want.type)
        if kind is not None:
            bad = pc.fill_null(_lossy_mask(values, kind), False)
            if pc.any(bad).as_py():
                lost.append((want.name, kind, bad, values))
                # The refused rows get a harmless value so that the cast and the other checks run; they are
                # reported with their written values.
                values = pc.if_else(bad, pa.scalar(0, pa.int64()).cast(values.type), values)
        try:
            columns.append(values.cast(want.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceDataError(f"sessions source {file}: column {want.name!r} cannot be read as {want.type}: "
                                  f"{_reason(exc)}") from exc
    table = pa.Table.from_arrays(columns, schema=SCHEMA)
    _check_values(table, file, lost)
    return table


_NON_NEGATIVE = ("duration_sec", "message_count", "tool_invocations", "tokens")
SAMPLE_ROWS = 3
KEY_COLUMNS = ("session_id", "user_id", TIMESTAMP)  # shown in every sample row


def _check_values(table: pa.Table, file: str, lost: list) -> None:
    """Every session row must be complete and sane, or nothing is computed from the range: a null key or
    count would be dropped or summed as 0, and a negative count or duration would shrink a sum or a
    mean, all without failing the schema of the computed features. `lost`: the rows a cast would have
    lost, with their written values. Vectorized; the details are only built on failure."""
    checks = list(lost)
    for name in SCHEMA.names:
        if table[name].null_count:
            checks.append((name, "null", pc.is_null(table[name]), None))
    duration = table["duration_sec"]
    bad = pc.or_kleene(pc.is_nan(duration), pc.is_inf(duration))
    if pc.any(bad).as_py():
        checks.append(("duration_sec", "NaN or infinite", bad, None))
    for name in _NON_NEGATIVE:
        negative = pc.less(table[name], 0)
        if pc.any(negative).as_py():
            checks.append((name, "negative", negative, None))
    if not checks:
        return
    found = []
    for name, what, mask, written in checks:
        mask = pc.fill_null(mask, False)
        rows = table.filter(mask)
        sample = rows.slice(0, SAMPLE_ROWS).select(_shown(name)).to_pylist()
        if written is not None:
            for row, value in zip(sample, written.filter(mask).slice(0, SAMPLE_ROWS).to_pylist()):
                row[name] = value
        found.append((name, what, len(rows), sample))
    raise rows_error(file, found)


def _shown(name: str) -> list[str]:
    return [*KEY_COLUMNS, *([name] if name not in KEY_COLUMNS else [])]


def rows_error(file: str, found: list[tuple[str, str, int, list[dict]]]) -> SourceDataError:
    """The one-line error for bad rows of `file`: per (column, what, count, sample rows), the first rows."""
    parts = [f"column {name!r}: {count} {what} value(s), first rows: {_shorten(sample)}"
             for name, what, count, sample in found]
    return SourceDataError(f"sessions source {file}: {len(found)} problem(s) in the rows read, nothing was "
                           f"computed: {'; '.join(parts)}")


def _shorten(rows: list[dict]) -> str:
    """Rows as text, with long values cut (a 1 MB session id would flood the run's log)."""
    return ", ".join("(" + ", ".join(f"{k}={_cut(v)}" for k, v in row.items()) + ")" for row in rows)


def _cut(value, limit: int = 80) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def _reason(exc: BaseException, limit: int = 300) -> str:
    """A library's error message on one line, cut (pyarrow's may span lines or quote whole values)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _bound(moment: datetime, ts_type: pa.DataType) -> pa.Scalar:
    moment = pd.Timestamp(moment)
    if ts_type.tz is None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return pa.scalar(moment, type=pa.timestamp("us", tz=ts_type.tz))
