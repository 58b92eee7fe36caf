"""Offline tables as Parquet: `<offline_dir>/<view>/<YYYY-MM-DD>.parquet`, one file per partition.

A file is written beside its final name and renamed into place, which is atomic on POSIX, so a
crash leaves the previous partition intact. Feast reads the directory as the view's FileSource.
"""

from __future__ import annotations

import os
import uuid
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_platform.compute.window_aggregate import EVENT_TIMESTAMP
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.offline import OfflineStore
from feature_platform.stores.schema import arrow_schema


class ParquetOfflineStore(OfflineStore):
    kind = "parquet"

    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, spec: FeatureViewSpec) -> Path:
        return self.root / spec.name

    def write_partition(self, spec: FeatureViewSpec, day: date, rows: pd.DataFrame) -> None:
        directory = self._dir(spec)
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"{day.isoformat()}.parquet"
        tmp = directory / f".{day.isoformat()}.{uuid.uuid4().hex}.tmp"
        table = pa.Table.from_pandas(rows[self.columns(spec)], schema=arrow_schema(spec), preserve_index=False)
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def read(self, spec: FeatureViewSpec, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        days = [d for d in self.partitions(spec) if (start is None or start <= d) and (end is None or d <= end)]
        schema = arrow_schema(spec)
        tables = [pq.read_table(self._dir(spec) / f"{d.isoformat()}.parquet", schema=schema) for d in days]
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        df = table.to_pandas()
        return df.sort_values([EVENT_TIMESTAMP, spec.entity.join_key], kind="stable").reset_index(drop=True)

    def register_duckdb(self, con, spec: FeatureViewSpec, name: str, lo: pd.Timestamp, hi: pd.Timestamp) -> None:
        files = [str(self._dir(spec) / f"{d.isoformat()}.parquet") for d in self.partitions(spec)]
        if not files:
            con.register(name, arrow_schema(spec).empty_table())
            return
        # DuckDB reads the files itself (streaming, row groups pruned by the timestamp filter).
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM read_parquet($files) "
            f"WHERE {EVENT_TIMESTAMP} BETWEEN TIMESTAMPTZ '{lo.isoformat()}' AND TIMESTAMPTZ '{hi.isoformat()}'"
            .replace("$files", "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]")
        )

    def partitions(self, spec: FeatureViewSpec) -> list[date]:
        directory = self._dir(spec)
        if not directory.exists():
            return []
        return sorted(date.fromisoformat(p.stem) for p in directory.glob("*.parquet") if not p.name.startswith("."))
