"""The embedded push transport: a landing directory of batch files per push source.

`<home>/push/<source>/incoming/<batch_id>.parquet|.jsonl` are waiting batches (written beside their
final name and renamed, so a reader never sees half a file); a processed batch moves to
`processed/`, a batch's bad rows go to `dead_letter/<batch_id>.parquet` with a reason per row.
Batch ids start with a nanosecond timestamp, so they sort in arrival order.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from feature_platform.util.atomic import atomic_write
from feature_platform.util.parquet_files import write_frame

SUFFIXES = (".parquet", ".jsonl")


class MalformedBatchError(ValueError):
    """A batch file that cannot be read as a table."""


def new_batch_id() -> str:
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


def rows_json(batch: pd.DataFrame) -> str:
    """`batch` as a JSON array of row objects that reads back as the same values: Python's encoder
    writes every float exactly (pandas' keeps 10 digits, so 1e-12 became 0) and ints of any size; times
    keep their offset and nanoseconds. Non-finite floats use JSON's common NaN/Infinity extension."""
    names, columns = [str(c) for c in batch.columns], []
    for name in batch.columns:
        column = batch[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column.dtype):
            columns.append([None if pd.isna(t) else t.isoformat() for t in column])
        else:
            columns.append(column.tolist())  # Python ints and floats; other objects through _json_value
    return json.dumps([dict(zip(names, row)) for row in zip(*columns)], default=_json_value)


def _json_value(value):
    if value is None or value is pd.NaT or value is pd.NA or (isinstance(value, np.datetime64) and np.isnat(value)):
        return None
    if isinstance(value, np.generic) and not isinstance(value, np.datetime64):
        return value.item()
    return value_text(value)


# Values every path judges as themselves; a value of any other type is judged by `value_text` of it.
NATIVE = (str, bool, np.bool_, int, np.integer, float, np.floating, datetime, date, np.datetime64)


def value_text(value) -> str:
    """A value as text, judged by every coercion exactly as the value itself (so a transport may carry a
    value as this text): ints in full, floats exactly (float32 too), times in ISO form with their offset
    (naive stays naive) and nanoseconds. Other objects (Decimal, lists...) by `str`: every path judges
    those by their text."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (datetime, date, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    return str(value)


def records_frame(rows) -> pd.DataFrame:
    """Parsed JSON rows as a frame of object columns holding the parsed values as they are: a column of
    ints with a null stays ints (pandas would make it float, and 2**60 + 1 another number)."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("rows must be a JSON array of objects")
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns = {}
    for name in names:
        column = np.empty(len(rows), dtype=object)
        column[:] = [row.get(name) for row in rows]
        columns[name] = column
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


class LandingDirectory:
    def __init__(self, home: Path, source: str):
        self.root = Path(home) / "push" / source
        self.incoming, self.processed, self.dead = (self.root / d for d in ("incoming", "processed", "dead_letter"))

    def write(self, batch: pd.DataFrame, batch_id: str | None = None) -> str:
        """Land `batch` atomically; returns its batch id."""
        batch_id = batch_id or new_batch_id()
        self.incoming.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.incoming / f"{batch_id}.parquet", durable=False) as tmp:  # on a push's latency path
            write_frame(batch, tmp)
        return batch_id

    def pending(self) -> list[str]:
        if not self.incoming.exists():
            return []
        return sorted(p.stem for p in self.incoming.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("."))

    def _path(self, batch_id: str) -> Path:
        for suffix in SUFFIXES:
            for folder in (self.incoming, self.processed):
                path = folder / f"{batch_id}{suffix}"
                if path.exists():
                    return path
        raise FileNotFoundError(f"batch {batch_id} is not in {self.incoming}")

    def read(self, batch_id: str) -> pd.DataFrame:
        path = self._path(batch_id)
        try:
            if path.suffix == ".jsonl":
                with open(path, encoding="utf-8") as lines:
                    return records_frame([json.loads(line) for line in lines if line.strip()])
            # Ints with nulls as Python ints (not floats, which round 2**60 + 1 to another entity's key).
            return pq.read_table(path).to_pandas(integer_object_nulls=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a malformed batch
            raise MalformedBatchError(f"batch {batch_id} ({path.name}) cannot be read: {exc}") from exc

    def dead_letter(self, batch_id: str, rows: pd.DataFrame) -> Path:
        self.dead.mkdir(parents=True, exist_ok=True)
        path = self.dead / f"{batch_id}.parquet"
        with atomic_write(path, durable=False) as tmp:
            write_frame(rows.astype(str), tmp)
        return path

    def dead_letter_file(self, batch_id: str, reason: str) -> Path:
        """Keep an unreadable batch file as it is, with its reason beside it."""
        self.dead.mkdir(parents=True, exist_ok=True)
        source = self._path(batch_id)
        shutil.copyfile(source, self.dead / source.name)
        (self.dead / f"{batch_id}.reason.txt").write_text(reason)
        return self.dead / source.name

    def ack(self, batch_id: str) -> None:
        """Mark a batch done (after it was safely written): it leaves incoming/."""
        self.processed.mkdir(parents=True, exist_ok=True)
        for suffix in SUFFIXES:
            path = self.incoming / f"{batch_id}{suffix}"
            if path.exists():
                os.replace(path, self.processed / path.name)
