"""Data-time freshness: how old is what users are actually served, per view, against its SLA.

Measured from the data, not from run times: the newest feature timestamp in the offline table and
the newest one written to the online store. A run that succeeded but wrote old data is stale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd

from feature_platform.runtime import Runtime
from feature_platform.spec import FeatureViewSpec
from feature_platform.specs import all_specs

FRESH, WARN, STALE, MISSING = "fresh", "warn", "stale", "missing"


@dataclass
class ViewFreshness:
    view: str
    sla: timedelta
    warn_after: timedelta
    latest_partition: str | None
    newest_offline: pd.Timestamp | None
    newest_online: pd.Timestamp | None
    age: timedelta | None  # of the older of the two: what a training set or a model may get
    status: str

    def as_dict(self) -> dict:
        return asdict(self)


def view_freshness(runtime: Runtime, spec: FeatureViewSpec, now: datetime | None = None) -> ViewFreshness:
    now = pd.Timestamp(now or datetime.now(timezone.utc))
    offline = runtime.offline.newest_timestamp(spec)
    online = runtime.online.newest_timestamp(spec)
    partitions = runtime.offline.partitions(spec) if spec.aggregation is not None else []
    if offline is None or online is None:
        age, status = None, MISSING
    else:
        age = (now - min(offline, online)).to_pytimedelta()
        status = STALE if age > spec.freshness_sla else WARN if age > spec.warn_window else FRESH
    return ViewFreshness(
        view=spec.name, sla=spec.freshness_sla, warn_after=spec.warn_window,
        latest_partition=partitions[-1].isoformat() if partitions else None,
        newest_offline=offline, newest_online=online, age=age, status=status,
    )


def freshness_table(runtime: Runtime, now: datetime | None = None) -> pd.DataFrame:
    """`view_freshness` of every declared view, one row each (`FeaturePlatform.freshness`)."""
    return pd.DataFrame([view_freshness(runtime, spec, now).as_dict() for spec in all_specs().values()])
