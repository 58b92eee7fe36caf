"""Raw sessions files written the many ways real writers write them (issue 19 items 6 and 10).

`VALID`: writers whose file holds exactly the frame's sessions (other widths, units, zones, encodings,
no statistics, extra columns): every engine must read the same values. `CORRUPT`: writers of a file that
does not match the declared schema or would lose a value, with the column the `SourceDataError` must name
(None: the file itself is unreadable). Each writer takes a sessions frame (`helpers.sessions_frame`
dtypes, at least one row for `CORRUPT`), a directory and a file stem, and returns the path it wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

COUNTS = ("message_count", "tool_invocations", "tokens")
Writer = Callable[[pd.DataFrame, Path, str], Path]


def _pandas(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Writer:
    def write(df: pd.DataFrame, directory: Path, stem: str) -> Path:
        path = directory / f"{stem}.parquet"
        change(df).to_parquet(path, index=False)
        return path
    return write


def _arrow(change: Callable[[pa.Table], pa.Table] = lambda t: t, **options) -> Writer:
    def write(df: pd.DataFrame, directory: Path, stem: str) -> Path:
        path = directory / f"{stem}.parquet"
        pq.write_table(change(pa.Table.from_pandas(df, preserve_index=False)), path, **options)
        return path
    return write


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def _times(df: pd.DataFrame, unit: str, tz: str | None = "UTC") -> pd.Series:
    ts = df["event_timestamp"].astype(f"datetime64[{unit}, UTC]")
    return ts.dt.tz_convert(tz) if tz else ts.dt.tz_localize(None)


VALID: dict[str, Writer] = {
    "plain": _pandas(lambda df: df),
    "no statistics, small row groups": _arrow(write_statistics=False, row_group_size=2),
    "one-row row groups": _arrow(row_group_size=1),
    "naive microseconds": _pandas(lambda df: df.assign(event_timestamp=_times(df, "us", None))),
    "naive nanoseconds": _pandas(lambda df: df.assign(event_timestamp=_times(df, "ns", None))),
    "milliseconds": _pandas(lambda df: df.assign(event_timestamp=_times(df, "ms"))),
    "seconds, other zone": _pandas(lambda df: df.assign(event_timestamp=_times(df, "s", "Asia/Kathmandu"))),
    "legacy INT96 times": _arrow(use_deprecated_int96_timestamps=True),
    "int32 and uint32 counts": _pandas(lambda df: df.astype({"message_count": "int32", "tokens": "uint32"})),
    "whole floats for counts": _pandas(lambda df: df.astype({c: "float64" for c in COUNTS})),
    "nullable Int64": _pandas(lambda df: df.astype({"user_id": "Int64", **{c: "Int64" for c in COUNTS}})),
    "int duration": _pandas(lambda df: df.astype({"duration_sec": "int64"})),
    "dictionary strings": _pandas(lambda df: df.astype({"model": "category", "session_id": "category"})),
    "large strings": _arrow(lambda t: _set(t, "session_id", t["session_id"].cast(pa.large_string()))),
    "extra columns": _pandas(lambda df: df.assign(note="x", score=np.float16(1.5), when=pd.Timedelta(seconds=3))),
    "columns reordered": _pandas(lambda df: df[list(reversed(df.columns))]),
    # A struct of two leaves first: the time is Arrow field 1 but Parquet column 2 (column 1 is all null).
    "nested column first": _arrow(lambda t: t.select(["event_timestamp", *[n for n in t.column_names
                                                                          if n != "event_timestamp"]]).add_column(
        0, "device", pa.array([{"os": "linux", "app": None}] * len(t),
                              pa.struct([("os", pa.string()), ("app", pa.string())])))),
}


# What a VALID writer needs of the frame (values its types can hold); the file then holds exactly this frame.
PREPARE: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "int32 and uint32 counts": lambda df: df.assign(message_count=df["message_count"] % 2**31,
                                                     tokens=df["tokens"] % 2**32),
    "int duration": lambda df: df.assign(duration_sec=df["duration_sec"].round()),
    "milliseconds": lambda df: df.assign(event_timestamp=df["event_timestamp"].dt.floor("ms")),
    "seconds, other zone": lambda df: df.assign(event_timestamp=df["event_timestamp"].dt.floor("s")),
}


def prepared(name: str, df: pd.DataFrame) -> pd.DataFrame:
    return PREPARE.get(name, lambda frame: frame)(df)


def _at(df: pd.DataFrame, column: str, i: int, value) -> pd.DataFrame:
    values = df[column].astype(object).copy()
    values.iloc[i] = value
    return df.assign(**{column: values})


def _null_time(table: pa.Table, i: int) -> pa.Table:
    times = table["event_timestamp"].to_pylist()
    times[i] = None
    return _set(table, "event_timestamp", pa.array(times, table.schema.field("event_timestamp").type))


def _repeat_user_id(table: pa.Table) -> pa.Table:
    return table.append_column("user_id", table["user_id"])


def _raw(content: bytes, name: str) -> Writer:
    def write(df: pd.DataFrame, directory: Path, stem: str) -> Path:
        path = directory / name.format(stem=stem)
        path.write_bytes(content)
        return path
    return write


# name -> (column the error names, writer(df, directory, stem, i)): row i of the frame is the bad one.
CORRUPT: dict[str, tuple[str | None, Callable[[pd.DataFrame, Path, str, int], Path]]] = {
    "fractional count": ("message_count", lambda df, d, s, i: _pandas(
        lambda f: _at(f.astype({"message_count": "float64"}), "message_count", i, 6.5).astype(
            {"message_count": "float64"}))(df, d, s)),
    "infinite count": ("tokens", lambda df, d, s, i: _pandas(
        lambda f: _at(f, "tokens", i, np.inf).astype({"tokens": "float64"}))(df, d, s)),
    "null time, no statistics": ("event_timestamp", lambda df, d, s, i: _arrow(
        lambda t: _null_time(t, i), write_statistics=False)(df, d, s)),
    "null time, statistics": ("event_timestamp", lambda df, d, s, i: _arrow(lambda t: _null_time(t, i))(df, d, s)),
    "repeated column": ("user_id", lambda df, d, s, i: _arrow(_repeat_user_id)(df, d, s)),
    "uint64 beyond int64": ("tokens", lambda df, d, s, i: _pandas(
        lambda f: _at(f, "tokens", i, 2**64 - 1).astype({"tokens": "uint64"}))(df, d, s)),
    "int duration beyond 2**53": ("duration_sec", lambda df, d, s, i: _pandas(
        lambda f: _at(f.assign(duration_sec=1), "duration_sec", i, 2**60).astype({"duration_sec": "int64"}))(df, d, s)),
    "sub-microsecond time": ("event_timestamp", lambda df, d, s, i: _pandas(lambda f: f.assign(
        event_timestamp=_times(f, "ns") + pd.to_timedelta((np.arange(len(f)) == i).astype("int64"), unit="ns")))(df, d, s)),
    "text counts": ("tokens", lambda df, d, s, i: _pandas(lambda f: f.assign(tokens=f["tokens"].astype(str)))(df, d, s)),
    "numeric model": ("model", lambda df, d, s, i: _pandas(lambda f: f.assign(model=np.arange(len(f))))(df, d, s)),
    "text times": ("event_timestamp", lambda df, d, s, i: _pandas(
        lambda f: f.assign(event_timestamp=f["event_timestamp"].astype(str)))(df, d, s)),
    "half-float duration": ("duration_sec", lambda df, d, s, i: _pandas(
        lambda f: f.assign(duration_sec=f["duration_sec"].clip(upper=60_000).astype("float16")))(df, d, s)),
    "negative count": ("tool_invocations", lambda df, d, s, i: _pandas(lambda f: _at(
        f, "tool_invocations", i, -1).astype({"tool_invocations": "int64"}))(df, d, s)),
    "missing column": ("tokens", lambda df, d, s, i: _pandas(lambda f: f.drop(columns="tokens"))(df, d, s)),
    "empty file": (None, lambda df, d, s, i: _raw(b"", "{stem}.parquet")(df, d, s)),
    "truncated file": (None, lambda df, d, s, i: _raw(b"PAR1 half a file", "{stem}.parquet")(df, d, s)),
    "not a Parquet file": (None, lambda df, d, s, i: _raw(b"user_id,tokens\n1,2\n", "{stem}.csv")(df, d, s)),
}

# Files every reader skips (the Hadoop/Spark convention): written beside the data, never read.
SKIPPED: dict[str, bytes] = {"_SUCCESS": b"", ".sessions.parquet.crc": b"junk", "_temporary/part-0": b"junk"}


def write_skipped(directory: Path) -> None:
    for name, content in SKIPPED.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(content)


def write_untyped_empty(directory: Path) -> None:
    """A Parquet file without rows whose columns have no type (pandas' empty object columns: Arrow's null
    type): it adds nothing."""
    columns = ["user_id", "session_id", "event_timestamp", "duration_sec", "message_count", "tool_invocations",
               "model", "tokens"]
    pd.DataFrame(columns=columns).to_parquet(directory / "no-rows.parquet", index=False)
