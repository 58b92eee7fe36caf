"""Quarantine: rows that failed validation, kept for inspection with the reason per row."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from feature_platform.util.parquet_files import write_frame


def quarantine(root: Path, view: str, partition: str, rows: pd.DataFrame, failures: pd.DataFrame) -> Path:
    """Write the failing rows and the failure report under `<root>/<view>/<partition>/<utc-stamp>/`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    directory = Path(root) / view / partition / stamp
    directory.mkdir(parents=True, exist_ok=True)
    write_frame(rows, directory / "rows.parquet")
    failures.astype(str).to_csv(directory / "failures.csv", index=False)
    (directory / "summary.json").write_text(
        json.dumps({"view": view, "partition": partition, "failing_rows": len(rows), "failures": len(failures)})
    )
    return directory
