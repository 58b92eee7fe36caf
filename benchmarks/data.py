"""Benchmark data: the seeded sessions log aggregated into `user_activity` offline partitions, cached.

The raw log is generated day by day with the demo generator and never stored: partition day D
needs raw events in [D-7, D+1), so only the last 8 raw days are kept in memory. Each partition is
computed with the platform's own `aggregate_days` and written with `ParquetOfflineStore` (no
Dagster, no validation, no online store: this is data preparation, not what is measured).
A marker `dataset.json` records (users, days, seed); a finished dataset is reused as it is.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from chat_activity.user_activity import SPEC

from feature_platform.compute.window_aggregate import aggregate_days
from feature_platform.config import Settings
from feature_platform.demo.generator import generate_day
from feature_platform.stores.offline_parquet import ParquetOfflineStore
from feature_platform.vocabulary import CREATED_TIMESTAMP, day_end

DATA_ROOT = Path(__file__).resolve().parent / "data"
END_DAY = date(2026, 10, 31)  # last partition day, fixed so that runs are reproducible
CREATED_AT = pd.Timestamp(datetime(2026, 11, 1, 6, 0, tzinfo=timezone.utc))  # one created_timestamp for all rows
ENTITY_SPAN_DAYS = 330  # entity timestamps are spread over the last ~330 days of the range
MARKER = "dataset.json"


def _spec_digest() -> str:
    """What changes the offline rows: the view's fields, aggregation and version (not its prose)."""
    payload = repr((SPEC.name, SPEC.version, SPEC.entity.join_key, SPEC.fields, SPEC.aggregation))
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Dataset:
    """A generated benchmark dataset: `home` is its FEATURE_PLATFORM_HOME."""

    users: int
    days: int
    seed: int
    home: Path
    info: dict

    @property
    def first_day(self) -> date:
        return END_DAY - timedelta(days=self.days - 1)

    @property
    def last_day(self) -> date:
        return END_DAY

    @property
    def settings(self) -> Settings:
        return settings_for(self.home, self.first_day)

    @property
    def offline_table_dir(self) -> Path:
        return self.settings.offline_dir / SPEC.name


def settings_for(home: Path, first_day: date) -> Settings:
    """Embedded-profile settings of a benchmark home (the process environment is ignored)."""
    return Settings.from_env({"FEATURE_PLATFORM_HOME": str(home), "FEATURE_PLATFORM_PARTITIONS_START": first_day.isoformat()})


def ensure_dataset(users: int, days: int, seed: int, log: Callable[[str], None] = print) -> Dataset:
    """The dataset for (users, days, seed): reused when its marker matches, else generated."""
    home = DATA_ROOT / f"users{users}-days{days}-seed{seed}"
    want = {"users": users, "days": days, "seed": seed, "end_day": END_DAY.isoformat(), "spec": _spec_digest()}
    marker = home / MARKER
    if marker.exists():
        info = json.loads(marker.read_text())
        if {k: info.get(k) for k in want} == want:
            log(f"data: reusing {home} ({info['offline_rows']:,} offline rows)")
            return Dataset(users, days, seed, home, info)
    if home.exists():
        shutil.rmtree(home)  # a partial or stale dataset of this benchmark's own directory
    home.mkdir(parents=True)
    dataset = Dataset(users, days, seed, home, {})
    info = want | _generate(dataset, log)
    marker.write_text(json.dumps(info, indent=2) + "\n")
    return Dataset(users, days, seed, home, info)


def _generate(ds: Dataset, log: Callable[[str], None]) -> dict:
    started = time.perf_counter()
    store = ParquetOfflineStore(ds.settings.offline_dir)
    window_days = SPEC.aggregation.window.days + 1  # the window plus the day before, for closing rows
    raw_days: deque[pd.DataFrame] = deque(maxlen=window_days)
    first_raw = ds.first_day - timedelta(days=window_days - 1)
    for i in range(window_days - 1):
        raw_days.append(generate_day(first_raw + timedelta(days=i), ds.users, ds.seed))
    raw_events = sum(len(f) for f in raw_days)
    offline_rows = 0
    for n in range(ds.days):
        day = ds.first_day + timedelta(days=n)
        raw_days.append(generate_day(day, ds.users, ds.seed))  # evicts day - 8
        raw_events += len(raw_days[-1])
        raw = pd.concat(raw_days, ignore_index=True)
        ((_, rows),) = aggregate_days(SPEC, raw, [day])
        store.write_partition(SPEC, day, rows.assign(**{CREATED_TIMESTAMP: CREATED_AT}))
        offline_rows += len(rows)
        if (n + 1) % 30 == 0 or n + 1 == ds.days:
            log(f"data: {n + 1}/{ds.days} partitions, {offline_rows:,} offline rows, "
                f"{time.perf_counter() - started:.0f}s")
    size = sum(p.stat().st_size for p in ds.offline_table_dir.glob("*.parquet"))
    return {
        "first_day": ds.first_day.isoformat(),
        "raw_events": raw_events,
        "offline_rows": offline_rows,
        "offline_bytes": size,
        "created_timestamp": CREATED_AT.isoformat(),
        "generation_sec": round(time.perf_counter() - started, 1),
    }


def entity_frame(n_rows: int, users: int, first_day: date, last_day: date, seed: int) -> pd.DataFrame:
    """`n_rows` random (user_id, tz-aware UTC event_timestamp, label) rows over the range's last days."""
    rng = np.random.default_rng([seed, n_rows, 2026])
    end = pd.Timestamp(day_end(last_day))
    span = timedelta(days=min(ENTITY_SPAN_DAYS, (last_day - first_day).days + 1))
    offsets = rng.integers(0, int(span / timedelta(microseconds=1)), size=n_rows)
    return pd.DataFrame({
        "user_id": rng.integers(1, users + 1, size=n_rows).astype("int64"),
        "event_timestamp": (end - pd.Timedelta(span)) + pd.to_timedelta(offsets, unit="us"),
        "label": rng.integers(0, 2, size=n_rows).astype("int64"),
    })


def ensure_entity_frame(ds: Dataset, n_rows: int) -> Path:
    """The entity frame of `ds` with `n_rows` rows, as a Parquet file (written once)."""
    path = ds.home / f"entities-{n_rows}.parquet"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        entity_frame(n_rows, ds.users, ds.first_day, ds.last_day, ds.seed).to_parquet(tmp, index=False)
        tmp.replace(path)
    return path
