"""What the commands print: aligned tables or, with --json, the same rows as JSON; durations, progress."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta


def jsonable(value):
    """`value` as plain JSON types: timestamps and days in ISO 8601, durations in seconds, missing values
    (None, NaN, NaT, pandas.NA) as null, NumPy scalars as Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)) or type(value).__name__ == "ndarray":
        return [jsonable(v) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # a NumPy scalar
        value = value.item()
    if value is None or type(value).__name__ in ("NaTType", "NAType") or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def print_json(document) -> None:
    print(json.dumps(jsonable(document), indent=2))


def print_table(rows: Sequence[Mapping], columns: Sequence[tuple[str, str]]) -> None:
    """`rows` as aligned text columns: (key, header) pairs, a missing value shown as `—`."""
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max([len(header)] + [len(line[i]) for line in cells]) for i, (_, header) in enumerate(columns)]
    for line in [[header for _, header in columns], *cells]:
        print("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip())


def _cell(value) -> str:
    if isinstance(value, timedelta):
        return span(value)
    value = jsonable(value)
    if value is None:
        return "—"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def duration(value) -> str:
    seconds = int(value.total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def span(value: timedelta) -> str:
    """A configured duration (a TTL, an SLA, a window): whole days as `7d`, else as `duration` shows it."""
    seconds = int(value.total_seconds())
    return f"{seconds // 86400}d" if seconds and seconds % 86400 == 0 else duration(value)


class ProgressBar:
    """A one-line progress display on stderr, restarted for each asset."""

    def __init__(self, width: int = 30):
        self.width = width
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int, asset: str, partition: str) -> None:
        if done == 1:
            self.started = time.perf_counter()
        filled = int(self.width * done / total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.started
        sys.stderr.write(f"\r{asset:<16} [{bar}] {done}/{total} {partition} {elapsed:5.1f}s")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()
