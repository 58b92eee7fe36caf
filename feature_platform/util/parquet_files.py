"""Parquet files read and written by Arrow's own file I/O from their path, never through a Python file object.

Given a local path, `pandas.read_parquet` and `DataFrame.to_parquet` open it as a Python file and hand that to
pyarrow: the file's bytes then live in Python objects (Arrow's `PyBuffer`). A read's background I/O thread that
drops the last of them while the interpreter is exiting must take the GIL, cannot, and aborts the whole process
("terminate called without an active exception": a core of `feature-platform demo` showed exactly this stack).
Given the path, Arrow reads and writes the file itself. The frames are the same: `pandas.read_parquet` is
`pyarrow.parquet.read_table(...).to_pandas()`, `to_parquet(index=False)` is `write_table(Table.from_pandas(...,
preserve_index=False))`, with the same default compression (snappy).
"""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def read_frame(path: str | os.PathLike, **to_pandas) -> pd.DataFrame:
    """The file (or directory of files) at `path` as a frame; `to_pandas` is passed to `Table.to_pandas`. A local
    file that cannot be opened raises the operating system's own error (its errno and reason), as `open` does:
    Arrow's names only the path."""
    where = os.fspath(path)
    if "://" not in where and not os.path.isdir(where):
        with open(where, "rb"):
            pass
    return pq.read_table(where).to_pandas(**to_pandas)


def write_frame(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write `frame` without its index to `path` (a local path or a URI pyarrow has a filesystem for)."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), os.fspath(path))


__all__ = ["read_frame", "write_frame"]
