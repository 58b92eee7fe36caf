"""The online store, through Feast: newest-wins writes and TTL-aware reads.

Feast's online stores disagree on ordering (SQLite overwrites unconditionally, Redis skips equal
timestamps) and ignore the view's TTL on reads. The platform makes both uniform: a write replaces
a value only when its feature timestamp is the same or newer (so a backfill never overwrites newer
values, and a re-run replaces its own), and a read reports values older than the TTL as expired.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, Protocol

import pandas as pd
from feast import FeatureStore
from feast.errors import FeatureViewNotFoundException
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from feature_platform.config import Settings
from feature_platform.dtypes import serving_dtype
from feature_platform.errors import StoreUnavailableError
from feature_platform.feast_format.redis_features import RedisFeatures
from feature_platform.feast_format.sqlite_features import SqliteFeatures
from feature_platform.redact import redact, secrets_of
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.unavailable import store_errors
from feature_platform.vocabulary import (
    EVENT_TIMESTAMP,
    EXPIRED,
    MISSING,
    PRESENT,
    event_timestamp_column,
    full_feature_name,
    status_column,
)

# Entity rows per Feast read on the embedded profile: below SQLite's bound-variable limit on every build
# (999 before SQLite 3.32, 32766 since; Debian's 250000), and large enough that Feast's per-call cost is noise.
SQLITE_READ_CHUNK = 900
class Watermarks:
    """The newest feature timestamp written online, per view, kept beside the values (max-only)."""

    def bump(self, view: str, ts: pd.Timestamp) -> None: ...

    def get(self, view: str) -> pd.Timestamp | None: ...

    def forget(self, view: str) -> None: ...


class RedisWatermarks(Watermarks):
    _MAX = "local c = redis.call('GET', KEYS[1]) if (not c) or tonumber(c) < tonumber(ARGV[1]) then " \
           "redis.call('SET', KEYS[1], ARGV[1]) end return 1"

    def __init__(self, client, reads=None):
        self.client = client
        self.reads = reads or client  # `get` is a read: the read client's budget
        self._bump = client.register_script(self._MAX)  # EVALSHA, loading the script on NOSCRIPT

    @staticmethod
    def key(view: str) -> str:
        return f"feature_platform:watermark:{view}"

    def bump(self, view: str, ts: pd.Timestamp) -> None:
        self._bump(keys=[self.key(view)], args=[int(ts.value // 1000)])

    def get(self, view: str) -> pd.Timestamp | None:
        raw = self.reads.get(self.key(view))
        return None if raw is None else pd.Timestamp(int(raw), unit="us", tz="UTC")

    def forget(self, view: str) -> None:
        self.client.delete(self.key(view))


class SqliteWatermarks(Watermarks):
    def __init__(self, path):
        import sqlite3

        self.path = Path(path)
        self.connect = lambda: sqlite3.connect(path, timeout=30)
        with self.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS feature_platform_watermarks (view TEXT PRIMARY KEY, ts_us INTEGER)")

    def bump(self, view: str, ts: pd.Timestamp) -> None:
        with self.connect() as conn:
            conn.execute(*self.bump_sql(view, ts.value))

    def bump_sql(self, view: str, ns: int) -> tuple[str, tuple]:
        """`bump` as a statement for a transaction of the caller's."""
        return ("INSERT INTO feature_platform_watermarks VALUES (?, ?) ON CONFLICT(view) "
                "DO UPDATE SET ts_us = max(ts_us, excluded.ts_us)", (view, int(ns // 1000)))

    def get(self, view: str) -> pd.Timestamp | None:
        with self.connect() as conn:
            row = conn.execute("SELECT ts_us FROM feature_platform_watermarks WHERE view = ?", (view,)).fetchone()
        return None if row is None else pd.Timestamp(row[0], unit="us", tz="UTC")

    def forget(self, view: str) -> None:
        with self.connect() as conn:
            conn.execute("DELETE FROM feature_platform_watermarks WHERE view = ?", (view,))


# Retries ride out a Redis restart or failover (writes are idempotent: newest-wins, ties rewrite), but only
# within a time budget per call (`BudgetRetry`), and every wait for an answer has a socket timeout: a Redis that
# is down, or frozen (it accepts connections and never answers), fails a read within about
# FEATURE_PLATFORM_ONLINE_READ_TIMEOUT_SEC and a write after FEATURE_PLATFORM_ONLINE_WRITE_TIMEOUT_SEC of retries.
REDIS_RETRIES = 6  # retries of a Redis Cluster client, which counts attempts rather than time
WRITE_RETRIES = 1_000  # a single Redis: the write budget, not the count, ends the retries
REDIS_BACKOFF = (0.05, 2.0)  # exponential backoff with jitter: base, cap (seconds)
READ_BACKOFF = (0.01, 0.2)  # a read's budget is short: retry a dropped connection at once
WRITE_WAIT_SEC = 5.0  # longest wait for one answer while writing (a script batch takes milliseconds)
CONNECT_WAIT_SEC = 2.0


class BudgetRetry(Retry):
    """redis-py's `Retry` with a time budget per call on top of its count: once `budget` seconds have passed
    since the call started, a failure is raised instead of retried (redis-py alone would wait for every
    retry's socket timeout: 38 s on a frozen Redis with 6 retries of 5 s)."""

    def __init__(self, budget: float, retries: int, backoff: tuple[float, float]):
        super().__init__(ExponentialWithJitterBackoff(base=backoff[0], cap=min(backoff[1], budget / 4)), retries)
        self.budget = budget

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count: bool = False):
        deadline = time.monotonic() + self.budget

        def fail_or_give_up(error, *count):
            fail(error, *count)
            if time.monotonic() >= deadline:
                raise error

        return super().call_with_retry(do, fail_or_give_up, is_retryable, with_failure_count)


def redis_client(settings: Settings, *, reads: bool = False):
    """A Redis client for the online store's writes or, with `reads`, its reads: waits and retries are bounded
    by the settings' write or read budget, so an outage fails fast instead of hanging a run or a request,
    and a brief restart does not fail a write at all. A `RedisCluster` when cluster nodes are set (the same
    timeouts and password, a retry count within the budget; it also follows MOVED/ASK redirections)."""
    import redis

    budget = settings.online_read_timeout_sec if reads else settings.online_write_timeout_sec
    wait = budget if reads else min(WRITE_WAIT_SEC, budget)  # a read's one wait may use its whole budget
    timeouts = {"socket_timeout": wait, "socket_connect_timeout": min(CONNECT_WAIT_SEC, wait)}
    backoff = READ_BACKOFF if reads else REDIS_BACKOFF
    if settings.redis_cluster_nodes:
        retries = max(1, min(REDIS_RETRIES, int(budget // wait)))  # each attempt may wait `wait`
        return cluster_client(settings, retry=BudgetRetry(budget, retries, backoff), **timeouts)
    return redis.Redis(host=settings.redis_host, port=settings.redis_port, db=settings.redis_db,
                       password=settings.redis_password or None, **timeouts,
                       retry=BudgetRetry(budget, REDIS_RETRIES if reads else WRITE_RETRIES, backoff),
                       retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError])


def cluster_client(settings: Settings, purpose: str = "the online store", **options):
    """A `redis.cluster.RedisCluster` on the seed nodes. It discovers the slot map when created, so an
    unreachable cluster fails here: as StoreUnavailableError, like any other Redis outage."""
    from redis.cluster import ClusterNode, RedisCluster
    from redis.exceptions import RedisClusterException

    with store_errors(settings, f"connecting to {purpose}"):
        try:
            return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in settings.redis_nodes],
                                password=settings.redis_password or None, **options)
        except RedisClusterException as exc:  # "cannot be connected", or slots not covered
            raise StoreUnavailableError(redact(f"connecting to {purpose}: {settings.redis_address} is "
                                               f"unreachable: {exc}", secrets_of(settings))) from exc


class OnlineFeatures(Protocol):
    """A profile's online store in Feast's format (built by `backends`): Redis (`RedisFeatures`, which also
    reads, all views in one round trip) or the embedded profile's SQLite file (`SqliteFeatures`; reads go
    through Feast)."""

    def write(self, spec: FeatureViewSpec, rows: pd.DataFrame) -> int:
        """Newest-wins (ties rewrite); returns how many entity rows were written."""

    def read_columns(self, spec_by_view: dict[str, FeatureViewSpec], columns, entity_rows: list[dict],
                     groups: list | None = None) -> dict:
        """{view: (stamps_ns or None per row, {feature: values})}; `groups`, if given, is `ReadLayout.groups`
        of the same columns (worked out once per feature list)."""

    def ping(self) -> None:
        """Fail (within the read budget) unless the store answers."""


class ReadLayout(NamedTuple):
    """The fixed parts of reading one list of columns, worked out once (`OnlineReads` keeps it with its plan)."""

    groups: list  # (view, spec, features) per view, in the columns' order
    ttl_ns: dict  # view -> its TTL in ns
    names: list  # (view, feature, column, status column, timestamp column) per column


def read_layout(spec_by_view: dict[str, FeatureViewSpec], columns) -> ReadLayout:
    wanted: dict[str, list[str]] = {}
    for c in columns:
        wanted.setdefault(c.view, []).append(c.feature)
    return ReadLayout([(v, spec_by_view[v], feats) for v, feats in wanted.items()],
                      {v: spec_by_view[v].ttl.total_seconds() * 1e9 for v in wanted},
                      [(c.view, c.feature, c.column, status_column(c.column), event_timestamp_column(c.column))
                       for c in columns])


class OnlineStore:
    """Newest-wins writes and TTL-aware reads over a profile's `OnlineFeatures`. The platform writes Feast's
    format itself, vectorized and newest-wins inside the store; reads report values older than the TTL as
    expired."""

    def __init__(self, store: FeatureStore, features: OnlineFeatures, watermarks: Watermarks, settings: Settings,
                 before_write=None):
        self.store = store
        self.features = features
        self.watermarks = watermarks
        self.settings = settings
        self.before_write = before_write  # registers the views (Runtime.apply): a write does, a read never

    def write(self, spec: FeatureViewSpec, rows: pd.DataFrame) -> int:
        """Write `rows` newest-wins (ties rewrite); returns how many rows were written."""
        if self.before_write is not None:
            self.before_write()
        if rows.empty:
            return 0
        with store_errors(self.settings, f"writing {spec.name!r} online"):
            written = self.features.write(spec, rows)
            if written:
                self.watermarks.bump(spec.name, pd.Timestamp(rows[EVENT_TIMESTAMP].max()))
        return written

    def write_logged(self, spec: FeatureViewSpec, rows, log) -> tuple[str, int]:
        """The low-latency path's write of `rows` (`push_rows.DirectRows`): append them to the direct log `log`,
        then write them newest-wins; returns (log entry id, rows written). The log always comes first, so a value
        served online is on its way offline too. On one Redis (not a cluster) with a Redis Stream log, the XADD,
        the newest-wins write and the watermark are one script call (one round trip); on SQLite, one transaction;
        elsewhere (a Redis Cluster), one call after the other."""
        if self.before_write is not None:
            self.before_write()
        features, watermarks = self.features, self.watermarks
        with store_errors(self.settings, f"writing {spec.name!r} online"):
            if isinstance(features, RedisFeatures) and not features.cluster and isinstance(watermarks, RedisWatermarks) \
                    and getattr(log, "stream", None) is not None:
                # The watermark is max-only and raised even when a row loses to a newer stored one: that one's
                # write already raised it at least that far, so nothing changes then.
                return features.write_logged(spec, rows.keys, rows.stamps, rows.values, log.stream, rows.log_json(),
                                             watermarks.key(spec.name), rows.newest_ns // 1000)
            if isinstance(features, SqliteFeatures) and isinstance(watermarks, SqliteWatermarks) \
                    and getattr(log, "db", None) == watermarks.path == features.path:
                entry, append = log.append(rows.log_json())
                written = features.write_rows(spec, rows.keys, rows.stamps, rows.values, rows.created.value,
                                              before=[append], after=[watermarks.bump_sql(spec.name, rows.newest_ns)])
                return entry, written
        frame = rows.frame()
        entry = log.write(frame)
        return entry, self.write(spec, frame)

    def newest_timestamp(self, spec: FeatureViewSpec) -> pd.Timestamp | None:
        """The newest feature timestamp written online for `spec` (None if nothing was)."""
        with store_errors(self.settings, f"reading the online watermark of {spec.name!r}"):
            return self.watermarks.get(spec.name)

    def read_lists(self, spec_by_view: dict[str, FeatureViewSpec], columns, entity_rows: list[dict],
                   now: datetime | None = None, with_metadata: bool = True,
                   layout: ReadLayout | None = None) -> dict[str, list]:
        """Column name -> list, one item per entity row: the entity columns, then for each
        `FeatureColumn` its value (None unless present) and, `with_metadata`, `<column>__status`
        (present / missing / expired) and `<column>__event_timestamp` (ns since the epoch, or None).
        `layout`: `read_layout(spec_by_view, columns)`, if the caller keeps it."""
        layout = layout or read_layout(spec_by_view, columns)
        now_ns = time.time_ns() if now is None else pd.Timestamp(now).value
        try:
            raw = self.features.read_columns(spec_by_view, columns, entity_rows, layout.groups)
        except Exception as exc:  # noqa: BLE001 - converted as `store_errors` does, or raised as it is
            with store_errors(self.settings, "reading online features"):  # entered on errors only: it costs a call
                raise exc
        if len(entity_rows) == 1:
            data: dict[str, list] = {k: [v] for k, v in entity_rows[0].items()}
        else:
            data = {k: [r[k] for r in entity_rows] for k in entity_rows[0]} if entity_rows else {}
        statuses = {}  # per view: its columns share the entity's timestamp
        for view, (stamps, _) in raw.items():
            ttl_ns = layout.ttl_ns[view]
            status = [MISSING if t is None else EXPIRED if now_ns - t > ttl_ns else PRESENT for t in stamps]
            statuses[view] = (status, status.count(PRESENT) == len(status))
        for view, feature, column, status_name, stamp_name in layout.names:
            status, all_present = statuses[view]
            values = raw[view][1][feature]
            # The store's lists are fresh per read (one per view and feature): all present, a column is its list.
            data[column] = values if all_present else [v if s is PRESENT else None for v, s in zip(values, status)]
            if with_metadata:
                data[status_name] = list(status)  # each column its own list, as callers may change them
                data[stamp_name] = [None if s is MISSING else t for t, s in zip(raw[view][0], status)]
        return data

    def read(self, spec_by_view: dict[str, FeatureViewSpec], columns, entity_rows: list[dict],
             now: datetime | None = None) -> pd.DataFrame:
        """`read_lists` as a DataFrame with the serving dtypes (the same as training sets')."""
        data: dict[str, object] = self.read_lists(spec_by_view, columns, entity_rows, now)
        for c in columns:
            data[c.column] = pd.array(data[c.column], dtype=serving_dtype(spec_by_view[c.view].field(c.feature).dtype))
            stamps = data[event_timestamp_column(c.column)]
            data[event_timestamp_column(c.column)] = pd.to_datetime([pd.NaT if t is None else t for t in stamps], utc=True)
        return pd.DataFrame(data, index=pd.RangeIndex(len(entity_rows)))



def read_redis_columns(features: RedisFeatures, spec_by_view, columns, entity_rows, groups=None) -> dict:
    """{view: (stamps_ns, {feature: values})} from Redis, all views in one round trip."""
    groups = groups or read_layout(spec_by_view, columns).groups
    if len(groups) == 1 and len(entity_rows) == 1:
        view, spec, feats = groups[0]
        stamps, values = features.read_one(spec, entity_rows[0][spec.entity.join_key], feats)
        return {view: (stamps, dict(zip(feats, values)))}
    requests = [(spec, [r[spec.entity.join_key] for r in entity_rows], feats, None) for _, spec, feats in groups]
    return {view: (stamps, dict(zip(feats, values)))
            for (view, _, feats), (stamps, values) in zip(groups, features.read_many_columns(requests))}


def read_through_feast(store: FeatureStore, columns, entity_rows, chunk: int) -> dict:
    """`_read_registered`, with the views the registry does not hold yet read as missing: a write registers
    its view first, so none has a value online, and a read registers nothing (`Runtime.apply` does)."""
    try:
        return _read_registered(store, columns, entity_rows, chunk)
    except FeatureViewNotFoundException:
        registered = {view.name for view in store.list_feature_views(allow_cache=False)}
    known = [c for c in columns if c.view in registered]
    out = _read_registered(store, known, entity_rows, chunk) if known else {}
    for c in columns:
        if c.view not in registered:
            out.setdefault(c.view, ([None] * len(entity_rows), {}))[1][c.feature] = [None] * len(entity_rows)
    return out


def _read_registered(store: FeatureStore, columns, entity_rows, chunk: int) -> dict:
    """{view: (stamps_ns, {feature: values})}, read through Feast in chunks of `chunk` rows: Feast's SQLite read
    binds one SQL variable per entity, so a read larger than SQLite's limit would fail (`too many SQL variables`)."""
    out = {c.view: ([], {c2.feature: [] for c2 in columns if c2.view == c.view}) for c in columns}
    for start in range(0, len(entity_rows), chunk):
        for view, (stamps, values) in _read_chunk_through_feast(store, columns, entity_rows[start:start + chunk]).items():
            out[view][0].extend(stamps)
            for feature, column in values.items():
                out[view][1][feature].extend(column)
    return out  # no rows: no chunk (Feast's SQLite read fails on an empty list: it indexes the first row)


def _read_chunk_through_feast(store: FeatureStore, columns, entity_rows) -> dict:
    refs = [f"{c.view}:{c.feature}" for c in columns]
    response = store.get_online_features(features=refs, entity_rows=entity_rows, full_feature_names=True)
    values = response.to_dict()
    by_name = {name: i for i, name in enumerate(response.proto.metadata.feature_names.val)}
    out: dict = {}
    for c in columns:
        result = response.proto.results[by_name[full_feature_name(c.view, c.feature)]]
        # Feast reports an absent entity as NOT_FOUND or (some stores) NULL_VALUE at epoch 0.
        stamps = [t.seconds * 1_000_000_000 + t.nanos
                  if s in (FieldStatus.PRESENT, FieldStatus.NULL_VALUE) and t.seconds > 0 else None
                  for s, t in zip(result.statuses, result.event_timestamps)]
        out.setdefault(c.view, (stamps, {}))[1][c.feature] = values[full_feature_name(c.view, c.feature)]
    return out
