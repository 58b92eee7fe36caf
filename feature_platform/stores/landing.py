"""The embedded push transport: a landing directory of batch files per push source.

`<home>/push/<source>/incoming/<batch_id>.parquet|.jsonl` are waiting batches (written beside their
final name and renamed, so a reader never sees half a file); a processed batch moves to
`processed/`, a batch's bad rows go to `dead_letter/<batch_id>.parquet` with a reason per row.
Batch ids start with a nanosecond timestamp, so they sort in arrival order.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pandas as pd

SUFFIXES = (".parquet", ".jsonl")


class MalformedBatchError(ValueError):
    """A batch file that cannot be read as a table."""


def new_batch_id() -> str:
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


class LandingDirectory:
    def __init__(self, home: Path, source: str):
        self.root = Path(home) / "push" / source
        self.incoming, self.processed, self.dead = (self.root / d for d in ("incoming", "processed", "dead_letter"))

    def write(self, batch: pd.DataFrame, batch_id: str | None = None) -> str:
        """Land `batch` atomically; returns its batch id."""
        batch_id = batch_id or new_batch_id()
        self.incoming.mkdir(parents=True, exist_ok=True)
        tmp = self.incoming / f".{batch_id}.tmp"
        batch.to_parquet(tmp, index=False)
        os.replace(tmp, self.incoming / f"{batch_id}.parquet")
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
                return pd.read_json(path, lines=True, dtype=False, convert_dates=False)
            return pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a malformed batch
            raise MalformedBatchError(f"batch {batch_id} ({path.name}) cannot be read: {exc}") from exc

    def dead_letter(self, batch_id: str, rows: pd.DataFrame) -> Path:
        self.dead.mkdir(parents=True, exist_ok=True)
        path = self.dead / f"{batch_id}.parquet"
        tmp = self.dead / f".{batch_id}.tmp"
        rows.astype(str).to_parquet(tmp, index=False)
        os.replace(tmp, path)
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
