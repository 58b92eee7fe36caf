"""The raw sessions log: one row per chat session, read from any Parquet file or directory.

Reads only the requested time range (pyarrow pushes the filter down to row groups and files), so
memory is bounded by the window being computed, never by the size of the log.
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

    Naive timestamps are read as UTC (the schema's documented zone). Missing columns, wrong or
    uncastable types (in any file of a directory), unreadable files, and rows with a null, a negative
    count or duration or a NaN/infinite duration raise `SourceDataError` naming the path, column and
    sample rows. A session id may repeat: `sessions_7d` counts distinct ids, the sums add every row.
    """
    path = Path(path)
    if not path.exists():
        raise SourceDataError(
            f"sessions source {path} does not exist: set FEATURE_PLATFORM_SESSIONS_PATH to your Parquet "
            "file or directory, or materialize the raw_sessions asset to generate demo data"
        )
    try:
        dataset = ds.dataset(str(path), format="parquet")
        # A directory's schema is its first file's: every file is checked, or a later file's text ids or
        # missing column would be cast or filled with nulls silently.
        for fragment in dataset.get_fragments():
            _check_file(fragment)
    except (pa.ArrowException, OSError) as exc:
        raise SourceDataError(f"sessions source {path} cannot be read as Parquet: {exc}") from exc
    _check_columns(dataset.schema, path)
    ts_type = dataset.schema.field(TIMESTAMP).type
    lo, hi = _bound(start, ts_type), _bound(end, ts_type)
    column = ds.field(TIMESTAMP)
    try:
        table = dataset.to_table(columns=SCHEMA.names, filter=(column >= lo) & (column < hi))
    except (pa.ArrowException, OSError) as exc:
        raise SourceDataError(f"sessions source {path} cannot be read: {exc}") from exc
    if ts_type.tz is None:
        log.warning("sessions source %s: %r is timezone-naive; reading it as UTC", path, TIMESTAMP)
        table = table.set_column(
            table.schema.get_field_index(TIMESTAMP), TIMESTAMP, pc.assume_timezone(table[TIMESTAMP], "UTC")
        )
    columns = []
    for want in SCHEMA:  # column by column, so the error names the column
        try:
            columns.append(table[want.name].cast(want.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceDataError(f"sessions source {path}: column {want.name!r} cannot be read as {want.type}: "
                                  f"{exc}") from exc
    table = pa.Table.from_arrays(columns, schema=SCHEMA)
    _check_values(table, path)
    # Strings stay in Arrow buffers (pandas' "string[pyarrow]"): a Python object per session id would
    # cost ~4x the memory and the conversion time, and factorizing them is faster.
    return table.to_pandas(types_mapper={pa.string(): STRING}.get)


_CHECKED: set[tuple[str, int, int]] = set()  # (file, mtime_ns, size) whose schema passed: a range run re-reads them


def _check_file(fragment) -> None:
    stat = os.stat(fragment.path)
    key = (fragment.path, stat.st_mtime_ns, stat.st_size)
    if key not in _CHECKED:
        _check_columns(fragment.physical_schema, Path(fragment.path))
        _check_null_times(fragment)
        if len(_CHECKED) > 100_000:
            _CHECKED.clear()
        _CHECKED.add(key)


def _check_null_times(fragment) -> None:
    """A session without a time falls outside every window (the range filter drops it): refuse the file,
    from its row-group statistics (no data read; files written without statistics are not checked)."""
    metadata = fragment.metadata
    index = fragment.physical_schema.get_field_index(TIMESTAMP)
    nulls = 0
    for i in range(metadata.num_row_groups):
        stats = metadata.row_group(i).column(index).statistics
        nulls += stats.null_count if stats is not None and stats.has_null_count else 0
    if nulls:
        raise SourceDataError(f"sessions source {fragment.path}: column {TIMESTAMP!r}: {nulls} null value(s); "
                              "every session needs its time")


def _check_columns(schema: pa.Schema, path: Path) -> None:
    missing = [name for name in SCHEMA.names if name not in schema.names]
    if missing:
        raise SourceDataError(f"sessions source {path}: missing column(s) {missing}; expected {SCHEMA.names}")
    for want in SCHEMA:
        got = schema.field(want.name).type
        if not _compatible(want.type, got):
            expected = "a timestamp" if pa.types.is_timestamp(want.type) else str(want.type)
            raise SourceDataError(f"sessions source {path}: column {want.name!r} has type {got}, expected {expected}")


def _compatible(want: pa.DataType, got: pa.DataType) -> bool:
    """Whether `got` holds `want`'s kind of value: any integer width for an integer (a lossy float is caught
    by the cast), but never text or bools for numbers, nor numbers for text: Arrow would cast "7" or True
    to 7 or 1 without a word."""
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(got)
    if pa.types.is_null(got):
        return True  # an all-null column: the null check names it
    if pa.types.is_dictionary(got):
        got = got.value_type
    if pa.types.is_integer(want):
        return pa.types.is_integer(got) or pa.types.is_floating(got)
    if pa.types.is_floating(want):
        return pa.types.is_integer(got) or pa.types.is_floating(got)
    return pa.types.is_string(got) or pa.types.is_large_string(got) or pa.types.is_string_view(got)


_NON_NEGATIVE = ("duration_sec", "message_count", "tool_invocations", "tokens")
SAMPLE_ROWS = 3


def _check_values(table: pa.Table, path: Path) -> None:
    """Every session row must be complete and sane, or nothing is computed from the range: a null key or
    count would be dropped or summed as 0, and a negative count or duration would shrink a sum or a
    mean, all without failing the schema of the computed features. Vectorized; the details are only built on failure."""
    problems: list[tuple[str, str, pa.Array]] = []  # (column, what, mask)
    for name in SCHEMA.names:
        if table[name].null_count:
            problems.append((name, "null", pc.is_null(table[name])))
    duration = table["duration_sec"]
    bad = pc.or_kleene(pc.is_nan(duration), pc.is_inf(duration))
    if pc.any(bad).as_py():
        problems.append(("duration_sec", "NaN or infinite", bad))
    for name in _NON_NEGATIVE:
        negative = pc.less(table[name], 0)
        if pc.any(negative).as_py():
            problems.append((name, "negative", negative))
    if not problems:
        return
    lines = [f"sessions source {path}: {sum(1 for _ in problems)} problem(s) in the rows read; nothing was computed"]
    for name, what, mask in problems:
        rows = table.filter(pc.fill_null(mask, False))
        sample = rows.slice(0, SAMPLE_ROWS).select(["session_id", "user_id", TIMESTAMP, *([name] if name not in (
            "session_id", "user_id", TIMESTAMP) else [])]).to_pylist()
        lines.append(f"  column {name!r}: {len(rows)} {what} value(s); first rows: {_shorten(sample)}")
    raise SourceDataError("\n".join(lines))


def _shorten(rows: list[dict]) -> str:
    """Rows as text, with long values cut (a 1 MB session id would flood the run's log)."""
    return "; ".join(", ".join(f"{k}={_cut(v)}" for k, v in row.items()) for row in rows)


def _cut(value, limit: int = 80) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def _bound(moment: datetime, ts_type: pa.DataType) -> pa.Scalar:
    moment = pd.Timestamp(moment)
    if ts_type.tz is None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return pa.scalar(moment, type=pa.timestamp("us", tz=ts_type.tz))
