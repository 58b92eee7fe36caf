"""The online store, through Feast: newest-wins writes and TTL-aware reads.

Feast's online stores disagree on ordering (SQLite overwrites unconditionally, Redis skips equal
timestamps) and ignore the view's TTL on reads. The platform makes both uniform: a write replaces
a value only when its feature timestamp is the same or newer (so a backfill never overwrites newer
values, and a re-run replaces its own), and a read reports values older than the TTL as expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cached_property

import pandas as pd
from feast import FeatureStore
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from feature_platform.compute.window_aggregate import EVENT_TIMESTAMP
from feature_platform.config import Settings
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.schema import SERVING_DTYPE
from feature_platform.stores.unavailable import store_errors

PRESENT, MISSING, EXPIRED = "present", "missing", "expired"
_READ_BATCH = 10_000  # below SQLite's bound-parameter limit


def _entity_keys(spec: FeatureViewSpec, values: Sequence) -> list[EntityKeyProto]:
    field = "int64_val" if spec.entity.dtype == "int64" else "string_val"
    caster = int if field == "int64_val" else str
    return [
        EntityKeyProto(join_keys=[spec.entity.join_key], entity_values=[ValueProto(**{field: caster(v)})])
        for v in values
    ]


class Watermarks:
    """The newest feature timestamp written online, per view, kept beside the values (max-only)."""

    def bump(self, view: str, ts: pd.Timestamp) -> None: ...

    def get(self, view: str) -> pd.Timestamp | None: ...

    def forget(self, view: str) -> None: ...


class RedisWatermarks(Watermarks):
    _MAX = "local c = redis.call('GET', KEYS[1]) if (not c) or tonumber(c) < tonumber(ARGV[1]) then " \
           "redis.call('SET', KEYS[1], ARGV[1]) end return 1"

    def __init__(self, settings: Settings):
        import redis

        self.client = redis.Redis(host=settings.redis_host, port=settings.redis_port, db=settings.redis_db,
                                  password=settings.redis_password or None, socket_timeout=5, socket_connect_timeout=5)

    def bump(self, view: str, ts: pd.Timestamp) -> None:
        self.client.eval(self._MAX, 1, f"feature_platform:watermark:{view}", int(ts.value // 1000))

    def get(self, view: str) -> pd.Timestamp | None:
        raw = self.client.get(f"feature_platform:watermark:{view}")
        return None if raw is None else pd.Timestamp(int(raw), unit="us", tz="UTC")

    def forget(self, view: str) -> None:
        self.client.delete(f"feature_platform:watermark:{view}")


class SqliteWatermarks(Watermarks):
    def __init__(self, path):
        import sqlite3

        self.connect = lambda: sqlite3.connect(path, timeout=30)
        with self.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS feature_platform_watermarks (view TEXT PRIMARY KEY, ts_us INTEGER)")

    def bump(self, view: str, ts: pd.Timestamp) -> None:
        with self.connect() as conn:
            conn.execute("INSERT INTO feature_platform_watermarks VALUES (?, ?) ON CONFLICT(view) "
                         "DO UPDATE SET ts_us = max(ts_us, excluded.ts_us)", (view, int(ts.value // 1000)))

    def get(self, view: str) -> pd.Timestamp | None:
        with self.connect() as conn:
            row = conn.execute("SELECT ts_us FROM feature_platform_watermarks WHERE view = ?", (view,)).fetchone()
        return None if row is None else pd.Timestamp(row[0], unit="us", tz="UTC")

    def forget(self, view: str) -> None:
        with self.connect() as conn:
            conn.execute("DELETE FROM feature_platform_watermarks WHERE view = ?", (view,))


def watermarks(settings: Settings) -> Watermarks:
    if settings.profile == "services":
        return RedisWatermarks(settings)
    return SqliteWatermarks(settings.feast_dir / "online.db")


class OnlineStore:
    def __init__(self, store: FeatureStore, settings: Settings):
        self.store = store
        self.settings = settings

    def current_timestamps(self, spec: FeatureViewSpec, keys: Sequence) -> pd.Series:
        """The stored feature timestamp per entity key (NaT where the entity has no value)."""
        fv = self.store.get_feature_view(spec.name)
        provider = self.store._get_provider()  # Feast has no public bulk timestamp read
        stamps: list = []
        with store_errors(self.settings, f"reading online timestamps of {spec.name!r}"):
            for i in range(0, len(keys), _READ_BATCH):
                rows = provider.online_read(
                    config=self.store.config, table=fv, entity_keys=_entity_keys(spec, keys[i : i + _READ_BATCH]),
                    requested_features=spec.feature_names[:1],
                )
                stamps.extend(ts for ts, _ in rows)
        return pd.Series(pd.to_datetime(stamps, utc=True), index=pd.Index(keys), dtype="datetime64[ns, UTC]")

    def write(self, spec: FeatureViewSpec, rows: pd.DataFrame) -> int:
        """Write `rows` newest-wins; returns how many rows were written (older ones are skipped)."""
        if rows.empty:
            return 0
        key = spec.entity.join_key
        current = self.current_timestamps(spec, rows[key].tolist())
        incoming = pd.to_datetime(rows[EVENT_TIMESTAMP], utc=True)
        keep = current.isna().to_numpy() | (incoming.to_numpy() >= current.to_numpy())
        fresh = rows.loc[keep]
        if not fresh.empty:
            with store_errors(self.settings, f"writing {spec.name!r} online"):
                self.store.write_to_online_store(spec.name, fresh, allow_registry_cache=True)
                self.watermarks.bump(spec.name, pd.Timestamp(fresh[EVENT_TIMESTAMP].max()))
        return int(len(fresh))

    @cached_property
    def watermarks(self) -> Watermarks:
        return watermarks(self.settings)

    def newest_timestamp(self, spec: FeatureViewSpec) -> pd.Timestamp | None:
        """The newest feature timestamp written online for `spec` (None if nothing was)."""
        with store_errors(self.settings, f"reading the online watermark of {spec.name!r}"):
            return self.watermarks.get(spec.name)

    def read(self, spec_by_view: dict[str, FeatureViewSpec], columns, entity_rows: list[dict],
             now: datetime | None = None) -> pd.DataFrame:
        """One row per entity row: the entity columns, then for each `FeatureColumn` its value,
        `<column>__status` (present / missing / expired) and `<column>__event_timestamp`."""
        now = pd.Timestamp(now or datetime.now(timezone.utc))
        refs = [f"{c.view}:{c.feature}" for c in columns]
        with store_errors(self.settings, "reading online features"):
            response = self.store.get_online_features(features=refs, entity_rows=entity_rows, full_feature_names=True)
        values = response.to_dict()
        by_name = {name: i for i, name in enumerate(response.proto.metadata.feature_names.val)}
        out = pd.DataFrame(entity_rows)
        for c in columns:
            spec = spec_by_view[c.view]
            result = response.proto.results[by_name[f"{c.view}__{c.feature}"]]
            stamps = pd.to_datetime([t.seconds + t.nanos / 1e9 for t in result.event_timestamps], unit="s", utc=True)
            # Feast's Redis store reports an absent entity as NULL_VALUE at epoch 0, not NOT_FOUND.
            found = [s in (FieldStatus.PRESENT, FieldStatus.NULL_VALUE) and t.seconds > 0
                     for s, t in zip(result.statuses, result.event_timestamps)]
            expired = [f and (now - t) > spec.ttl for f, t in zip(found, stamps)]
            served = [None if (not f or e) else v for v, f, e in zip(values[f"{c.view}__{c.feature}"], found, expired)]
            out[c.column] = pd.Series(served, dtype=SERVING_DTYPE[spec.field(c.feature).dtype], index=out.index)
            out[f"{c.column}__status"] = [EXPIRED if e else PRESENT if f else MISSING for f, e in zip(found, expired)]
            out[f"{c.column}__event_timestamp"] = [t if f else pd.NaT for t, f in zip(stamps, found)]
        return out
