"""Online sync from Spark: each executor partition writes its rows to Redis itself, in Feast's format.

The rows never come back to the driver. Each entity's newest row of the run is chosen by a Spark window
(as `pipeline._newest` does on pandas), which also leaves each entity in one partition; every partition
then opens its own Redis client and writes through `RedisFeatures` (the same encoding and pipelined
newest-wins Lua script as the driver path, so the bytes in Redis are identical and a late or concurrent
older row never overwrites a newer one). The written counts and newest timestamps are collected, one row
per partition, and the driver bumps the view's online watermark once.

The executors get the Redis connection as a small dict of `FEATURE_PLATFORM_REDIS_*` values (the password
included, as Spark ships any task closure; it is never logged, and errors are redacted). A backend whose
online store executors cannot write (the embedded profile's SQLite file: one local file, which executors on
other machines cannot reach and concurrent writers would only lock) keeps the driver path.
"""

from __future__ import annotations

import pandas as pd

from feature_platform.backends import build_backends
from feature_platform.compute.chunks import cast_to_spec
from feature_platform.config import FEAST_PROJECT, Settings
from feature_platform.errors import FeaturePlatformError, StoreUnavailableError
from feature_platform.redact import redact, secrets_of
from feature_platform.spec import FeatureViewSpec
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP

_REDIS_ENV = ("FEATURE_PLATFORM_REDIS_HOST", "FEATURE_PLATFORM_REDIS_PORT", "FEATURE_PLATFORM_REDIS_DB",
              "FEATURE_PLATFORM_REDIS_PASSWORD", "FEATURE_PLATFORM_REDIS_CLUSTER_NODES",
              "FEATURE_PLATFORM_ONLINE_WRITE_TIMEOUT_SEC")
_RESULT = "written long, newest_us long"


def redis_conf(settings: Settings) -> dict[str, str]:
    """What an executor needs to reach the online store (and nothing else of the settings)."""
    env = settings.as_env()
    return {"FEATURE_PLATFORM_PROFILE": "services", **{k: env[k] for k in _REDIS_ENV}}


def sync_online(spark_df, spec: FeatureViewSpec, settings: Settings, project: str | None = None) -> int:
    """Write each entity's newest row of `spark_df` (key, features, event_timestamp[, created_timestamp]) to
    the Redis online store from the executors, newest-wins; returns the rows written. A low-level write: the
    view must be registered already (`apply`, or a materialization, which calls this after applying)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not build_backends(settings).executor_online_writes:
        raise FeaturePlatformError(f"feature view {spec.name!r}: the Spark online sync writes to Redis (the "
                                   f"services profile); the embedded profile's SQLite file is written by the driver")
    if project is None:
        project = FEAST_PROJECT
    key = spec.entity.join_key
    order = [F.col(EVENT_TIMESTAMP).desc()]
    if CREATED_TIMESTAMP in spark_df.columns:
        order.append(F.col(CREATED_TIMESTAMP).desc())
    columns = [key, *(f.name for f in spec.fields), EVENT_TIMESTAMP]
    newest = (spark_df.withColumn("__fp_rank", F.row_number().over(Window.partitionBy(key).orderBy(*order)))
              .where(F.col("__fp_rank") == 1).select(*columns))
    write = _partition_writer(redis_conf(settings), spec, project)
    try:
        results = newest.mapInPandas(write, _RESULT).where(F.col("written") > 0).collect()
    except Exception as exc:  # noqa: BLE001 - an executor's error reaches the driver as a Py4J/Python error
        text = redact(str(exc), secrets_of(settings))
        if "StoreUnavailableError" in text or "ConnectionError" in text or "TimeoutError" in text:
            raise StoreUnavailableError(f"writing {spec.name!r} online from Spark: {settings.redis_address} is "
                                        f"unreachable: {text[-2000:]}") from None
        raise FeaturePlatformError(f"writing {spec.name!r} online from Spark failed: {text[-2000:]}") from None
    written = sum(r.written for r in results)
    if written:
        from feature_platform.stores.online import RedisWatermarks, redis_client

        newest_us = max(r.newest_us for r in results)
        RedisWatermarks(redis_client(settings)).bump(spec.name, pd.Timestamp(newest_us * 1000, tz="UTC"))
    return written


def _partition_writer(conf: dict[str, str], spec: FeatureViewSpec, project: str):
    """The `mapInPandas` function: one Redis client per partition, its batches written newest-wins."""

    def write(batches):
        # Imported on the executor: the driver ships only this closure (spec, project, the Redis dict).
        from feature_platform.config import Settings
        from feature_platform.feast_format.redis_features import RedisFeatures
        from feature_platform.stores.online import redis_client
        from feature_platform.stores.unavailable import store_errors

        settings = Settings.from_env(conf)
        client = redis_client(settings)
        features = RedisFeatures(client, project)
        written, newest = 0, None
        try:
            with store_errors(settings, f"writing {spec.name!r} online from a Spark partition"):
                for batch in batches:
                    if batch.empty:
                        continue
                    rows = cast_to_spec(spec, batch, copy=False)
                    # Spark hands timestamps over naive in the session time zone, which is pinned to UTC
                    rows[EVENT_TIMESTAMP] = pd.to_datetime(rows[EVENT_TIMESTAMP], utc=True)
                    written += features.write(spec, rows)
                    top = rows[EVENT_TIMESTAMP].max()
                    newest = top if newest is None else max(newest, top)
        finally:
            client.close()
        yield pd.DataFrame({"written": [written], "newest_us": [0 if newest is None else newest.value // 1000]})

    return write


__all__ = ["redis_conf", "sync_online"]
