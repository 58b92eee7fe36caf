"""The raw sessions log: one row per chat session, read from any Parquet file or directory.

Reads only the requested time range (pyarrow pushes the filter down to row groups and files), so
memory is bounded by the window being computed, never by the size of the log.
"""

from __future__ import annotations

import logging
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

    Naive timestamps are read as UTC (the schema's documented zone). Missing columns or
    uncastable types raise `SourceDataError` naming the path and column.
    """
    path = Path(path)
    if not path.exists():
        raise SourceDataError(
            f"sessions source {path} does not exist: set FEATURE_PLATFORM_SESSIONS_PATH to your Parquet "
            "file or directory, or materialize the raw_sessions asset to generate demo data"
        )
    dataset = ds.dataset(str(path), format="parquet")
    _check_columns(dataset.schema, path)
    ts_type = dataset.schema.field(TIMESTAMP).type
    if not pa.types.is_timestamp(ts_type):
        raise SourceDataError(f"sessions source {path}: column {TIMESTAMP!r} has type {ts_type}, expected a timestamp")
    lo, hi = _bound(start, ts_type), _bound(end, ts_type)
    column = ds.field(TIMESTAMP)
    table = dataset.to_table(columns=SCHEMA.names, filter=(column >= lo) & (column < hi))
    if ts_type.tz is None:
        log.warning("sessions source %s: %r is timezone-naive; reading it as UTC", path, TIMESTAMP)
        table = table.set_column(
            table.schema.get_field_index(TIMESTAMP), TIMESTAMP, pc.assume_timezone(table[TIMESTAMP], "UTC")
        )
    try:
        table = table.cast(SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SourceDataError(f"sessions source {path}: cannot cast to the sessions schema: {exc}") from exc
    # Strings stay in Arrow buffers (pandas' "string[pyarrow]"): a Python object per session id would
    # cost ~4x the memory and the conversion time, and factorizing them is faster.
    return table.to_pandas(types_mapper={pa.string(): STRING}.get)


def _check_columns(schema: pa.Schema, path: Path) -> None:
    missing = [name for name in SCHEMA.names if name not in schema.names]
    if missing:
        raise SourceDataError(f"sessions source {path}: missing column(s) {missing}; expected {SCHEMA.names}")


def _bound(moment: datetime, ts_type: pa.DataType) -> pa.Scalar:
    moment = pd.Timestamp(moment)
    if ts_type.tz is None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return pa.scalar(moment, type=pa.timestamp("us", tz=ts_type.tz))
