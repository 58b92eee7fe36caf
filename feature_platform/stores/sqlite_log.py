"""The embedded profile's direct log: a table in Feast's SQLite online file, beside the values it logs.

`push(..., direct=True)` appends the accepted rows (`rows_json`, as the Redis Stream log holds them) in the
same SQLite transaction as their online write and the watermark (`SqliteFeatures.write_rows`): both land or
neither does. The drain reads the pending entries in id order and deletes each once it is safely offline.
Dead letters, and entries of the landing directory this log used to be (`push/<source>.direct/incoming/`,
still drained), are the landing directory's.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

from feature_platform.stores.landing import (
    LandingDirectory,
    MalformedBatchError,
    new_batch_id,
    records_frame,
    rows_json,
)

TABLE = "feature_platform_direct_log"


class SqliteDirectLog(LandingDirectory):
    def __init__(self, home: Path, source: str, db: Path):
        super().__init__(home, source)
        self.db, self.source = Path(db), source
        self.db.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (source TEXT, id TEXT, rows TEXT, PRIMARY KEY (source, id))")
        conn.close()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db, timeout=60)

    def append(self, rows: str, batch_id: str | None = None) -> tuple[str, tuple[str, tuple]]:
        """(batch id, the INSERT appending entry `rows`), for a transaction of the caller's."""
        batch_id = batch_id or new_batch_id()
        return batch_id, (f"INSERT INTO {TABLE} VALUES (?, ?, ?)", (self.source, batch_id, rows))

    def write(self, batch: pd.DataFrame, batch_id: str | None = None) -> str:
        batch_id, (sql, params) = self.append(rows_json(batch), batch_id)
        with self._connect() as conn:
            conn.execute(sql, params)
        conn.close()
        return batch_id

    def pending(self) -> list[str]:
        with self._connect() as conn:
            ids = [r[0] for r in conn.execute(f"SELECT id FROM {TABLE} WHERE source = ?", (self.source,))]
        conn.close()
        return sorted(ids + super().pending())

    def _rows(self, batch_id: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute(f"SELECT rows FROM {TABLE} WHERE source = ? AND id = ?", (self.source, batch_id)).fetchone()
        conn.close()
        return None if row is None else row[0]

    def read(self, batch_id: str) -> pd.DataFrame:
        raw = self._rows(batch_id)
        if raw is None:
            return super().read(batch_id)  # a file of the landing directory
        try:
            return records_frame(json.loads(raw))
        except ValueError as exc:
            raise MalformedBatchError(f"batch {batch_id} of the direct log of {self.source!r} cannot be read: {exc}") from exc

    def dead_letter_file(self, batch_id: str, reason: str) -> Path:
        raw = self._rows(batch_id)
        if raw is None:
            return super().dead_letter_file(batch_id, reason)
        self.dead.mkdir(parents=True, exist_ok=True)
        (self.dead / f"{batch_id}.json").write_text(raw)
        (self.dead / f"{batch_id}.reason.txt").write_text(reason)
        return self.dead / f"{batch_id}.json"

    def ack(self, batch_id: str) -> None:
        super().ack(batch_id)  # a landing file of that id (none for a table entry)
        with self._connect() as conn:
            conn.execute(f"DELETE FROM {TABLE} WHERE source = ? AND id = ?", (self.source, batch_id))
        conn.close()
