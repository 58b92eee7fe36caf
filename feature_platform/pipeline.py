"""One partition of a feature view: compute, validate, then write offline and online (or nothing).

Validation runs before any write. On failure nothing is written anywhere for the partition; the
failing rows go to quarantine and the error names the view, column, check and sample rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import pandas as pd
import pandera.pandas as pa

from feature_platform.compute.window_aggregate import CREATED_TIMESTAMP
from feature_platform.derive.pandera_schema import pandera_schema
from feature_platform.errors import ValidationFailedError
from feature_platform.runtime import Runtime
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.quarantine import quarantine

SAMPLE_ROWS = 5


@dataclass
class PartitionResult:
    view: str
    day: date
    rows: int
    closing_rows: int
    rows_online: int
    duration_sec: float
    stats: dict = field(default_factory=dict)


def validate(spec: FeatureViewSpec, rows: pd.DataFrame) -> pd.DataFrame | None:
    """Pandera failure cases of `rows` (one row per failing value), or None when valid."""
    try:
        pandera_schema(spec).validate(rows, lazy=True)
        return None
    except pa.errors.SchemaErrors as exc:
        return exc.failure_cases


def failure_message(spec: FeatureViewSpec, day: date, rows: pd.DataFrame, failures: pd.DataFrame) -> str:
    lines = [f"feature view {spec.name!r}, partition {day}: {len(failures)} value(s) failed validation; nothing was written"]
    for (column, check), group in failures.groupby(["column", "check"], dropna=False, sort=False):
        idx = [i for i in group["index"].tolist() if i is not None and i == i][:SAMPLE_ROWS]
        sample = rows.loc[[i for i in idx if i in rows.index]]
        lines.append(f"  column {column!r} check {check!r}: {len(group)} failing; sample rows:")
        lines.append("    " + sample.to_string(max_cols=12).replace("\n", "\n    ") if len(sample) else "    (table-level)")
    return "\n".join(lines)


def write_partition(runtime: Runtime, spec: FeatureViewSpec, day: date, rows: pd.DataFrame, started: float) -> PartitionResult:
    """Validate then write one computed partition; raises ValidationFailedError with nothing written."""
    failures = validate(spec, rows)
    if failures is not None:
        bad_index = failures["index"].dropna().unique()
        bad = rows.loc[rows.index.intersection(bad_index)]
        where = quarantine(runtime.settings.quarantine_dir, spec.name, day.isoformat(), bad, failures)
        raise ValidationFailedError(
            failure_message(spec, day, rows, failures) + f"\n  quarantined in {where}",
            view=spec.name, partition=day.isoformat(), failures=failures, quarantine_path=str(where),
        )
    rows = rows.assign(**{CREATED_TIMESTAMP: pd.Timestamp(datetime.now(timezone.utc))})
    runtime.offline.write_partition(spec, day, rows)
    written = runtime.online.write(spec, rows)
    return PartitionResult(
        view=spec.name,
        day=day,
        rows=len(rows),
        closing_rows=_closing_rows(spec, rows),
        rows_online=written,
        duration_sec=time.perf_counter() - started,
        stats=feature_stats(spec, rows),
    )


def materialize_partition(runtime: Runtime, spec: FeatureViewSpec, day: date) -> PartitionResult:
    started = time.perf_counter()
    ((_, rows),) = runtime.compute(spec, day, day)
    return write_partition(runtime, spec, day, rows, started)


def feature_stats(spec: FeatureViewSpec, rows: pd.DataFrame) -> dict:
    """Per feature: null count and rate and distinct count; min/max/mean for numeric ones (None when all null)."""
    stats: dict = {"null_counts": {f.name: int(rows[f.name].isna().sum()) for f in spec.fields}}
    for f in spec.fields:
        column = rows[f.name]
        stats[f.name] = {"null_rate": float(column.isna().mean()) if len(rows) else 0.0,
                         "distinct": float(column.nunique(dropna=True))}
        if f.dtype in ("int64", "float32", "float64"):
            col = pd.to_numeric(column, errors="coerce")
            stats[f.name] |= {k: (None if pd.isna(v) else float(v)) for k, v in
                              (("min", col.min()), ("max", col.max()), ("mean", col.mean()))}
    return stats


def _closing_rows(spec: FeatureViewSpec, rows: pd.DataFrame) -> int:
    if spec.aggregation is None:
        return 0
    first = spec.aggregation.aggs[0]
    return int((rows[first.feature] == first.empty_value).sum()) if first.empty_value is not None else 0

