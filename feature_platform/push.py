"""Pushed event batches: split into rows that can land and rows that go to the dead-letter, with a reason each.

Nothing here writes: `prepare_batch` is pure, so the sensor path and the low-latency path validate
exactly alike. A bad row never stops the good rows of its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd

from feature_platform.compute.window_aggregate import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feature_platform.derive.pandera_schema import pandera_schema
from feature_platform.pipeline import validate
from feature_platform.spec import FeatureViewSpec

MAX_CLOCK_SKEW = timedelta(minutes=5)  # events further in the future than this are rejected
REASON = "reason"
_NUMERIC = {"int64", "float32", "float64"}


@dataclass
class PreparedBatch:
    accepted: pd.DataFrame  # typed rows: key, features, event_timestamp, created_timestamp
    rejected: pd.DataFrame  # the offending input rows as text, plus `reason`
    duplicates: int  # rows dropped as repeats of (key, event_timestamp)

    @property
    def newest_event(self) -> pd.Timestamp | None:
        return None if self.accepted.empty else self.accepted[EVENT_TIMESTAMP].max()


def prepare_batch(spec: FeatureViewSpec, batch: pd.DataFrame, now: datetime | None = None) -> PreparedBatch:
    """Coerce, check and dedupe one pushed batch for `spec`."""
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    key = spec.entity.join_key
    wanted = [key, EVENT_TIMESTAMP, *spec.feature_names]
    missing = [c for c in wanted if c not in batch.columns]
    if missing:
        rejected = batch.astype(str).assign(**{REASON: f"batch lacks column(s) {missing} of view {spec.name!r}"})
        return PreparedBatch(_empty(spec), rejected, 0)

    frame = batch[wanted].reset_index(drop=True)
    reasons = pd.Series([[] for _ in range(len(frame))], dtype=object)
    typed = pd.DataFrame(index=frame.index)

    keys = pd.to_numeric(frame[key], errors="coerce") if spec.entity.dtype == "int64" else frame[key]
    bad_key = keys.isna() | ((keys % 1) != 0 if spec.entity.dtype == "int64" else False)
    _note(reasons, bad_key, f"{key}: missing or not an integer" if spec.entity.dtype == "int64" else f"{key}: missing")
    typed[key] = keys.where(~bad_key, 0).astype("int64" if spec.entity.dtype == "int64" else object)

    stamps, naive, unparsable = _timestamps(frame[EVENT_TIMESTAMP])
    _note(reasons, unparsable, f"{EVENT_TIMESTAMP}: missing or not a timestamp")
    _note(reasons, naive, f"{EVENT_TIMESTAMP}: timezone-naive (send UTC offsets, e.g. 2026-01-01T12:00:00Z)")
    future = stamps > now + MAX_CLOCK_SKEW
    _note(reasons, future.fillna(False), f"{EVENT_TIMESTAMP}: more than {MAX_CLOCK_SKEW} in the future")
    typed[EVENT_TIMESTAMP] = stamps

    for f in spec.fields:
        column = frame[f.name]
        if f.dtype in _NUMERIC:
            values = pd.to_numeric(column, errors="coerce")
            _note(reasons, values.isna() & column.notna(), f"{f.name}: not a number ({f.dtype})")
            if f.dtype == "int64":
                _note(reasons, values.notna() & ((values % 1) != 0), f"{f.name}: not an integer")
            typed[f.name] = values
        else:
            typed[f.name] = column.where(column.isna(), column.astype(str))
        if not f.nullable:
            _note(reasons, column.isna(), f"{f.name}: missing")

    ok = reasons.map(len) == 0
    candidates = _cast(spec, typed[ok]).drop_duplicates([key, EVENT_TIMESTAMP], keep="last")
    failures = validate(spec, candidates)
    if failures is not None:
        for idx, group in failures.dropna(subset=["index"]).groupby("index"):
            reasons[idx] = reasons[idx] + [f"{r.column}: failed {r.check} (value {r.failure_case})" for r in group.itertuples()]
        ok = reasons.map(len) == 0

    accepted = typed[ok]
    deduped = accepted.drop_duplicates([key, EVENT_TIMESTAMP], keep="last")
    accepted = _cast(spec, deduped).assign(**{CREATED_TIMESTAMP: now}).reset_index(drop=True)
    rejected = batch.reset_index(drop=True)[~ok].astype(str).assign(**{REASON: reasons[~ok].map("; ".join)})
    return PreparedBatch(accepted, rejected.reset_index(drop=True), len(typed[ok]) - len(deduped))


def _timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """UTC timestamps, plus masks of naive and unparsable values."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        stamps = values.dt.tz_convert("UTC")
        none = pd.Series(False, index=values.index)
        return stamps, none, values.isna()
    if pd.api.types.is_datetime64_dtype(values.dtype):
        naive = values.notna()
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]"), naive, values.isna()
    parsed = [_parse(v) for v in values]
    naive = pd.Series([p is not None and p.tzinfo is None for p in parsed], index=values.index)
    stamps = pd.Series([p.tz_convert("UTC") if p is not None and p.tzinfo else pd.NaT for p in parsed],
                       index=values.index, dtype="datetime64[ns, UTC]")
    return stamps, naive, pd.Series([p is None for p in parsed], index=values.index)


def _parse(value) -> pd.Timestamp | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(stamp) else stamp


def _note(reasons: pd.Series, mask: pd.Series, text: str) -> None:
    for i in mask[mask.fillna(False).astype(bool)].index:
        reasons[i] = reasons[i] + [text]


def _cast(spec: FeatureViewSpec, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for f in spec.fields:
        if f.dtype == "int64" and not frame[f.name].isna().any():
            frame[f.name] = frame[f.name].astype("int64")
        elif f.dtype in ("float32", "float64"):
            frame[f.name] = frame[f.name].astype(f.dtype)
    return frame


def _empty(spec: FeatureViewSpec) -> pd.DataFrame:
    schema = pandera_schema(spec)
    frame = pd.DataFrame({name: pd.Series(dtype=str(col.dtype)) for name, col in schema.columns.items()})
    return frame.assign(**{CREATED_TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]")})
