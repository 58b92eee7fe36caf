"""Entity sets that stay in Spark: a Parquet path or a Spark DataFrame of label rows, checked as
`training.check_entity_frame` checks a pandas frame. (Request-time features on the executors:
`training.with_request_features`.)

For training sets too large for the driver: the entity rows are read, joined and written by Spark; the
driver only sees the schema, one row of bounds and, when a check fails, a few sample rows.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from feature_platform.errors import FeaturePlatformError, RequestFeatureError, shorten
from feature_platform.spec import FeatureViewSpec
from feature_platform.vocabulary import EVENT_TIMESTAMP

SAMPLE_ROWS = 3


class EntitySetError(FeaturePlatformError, ValueError):
    """An entity set (Parquet path or Spark DataFrame) that cannot be joined."""


def is_spark_frame(value) -> bool:
    return type(value).__module__.startswith("pyspark.sql") and hasattr(value, "schema")


def read_entity_set(spark, entities):
    """A Parquet path (file or directory), a Spark DataFrame or a pandas frame, as a Spark DataFrame whose
    `event_timestamp` is a Spark timestamp (pandas' nanosecond Parquet times floored to microseconds)."""
    from pyspark.sql import functions as F

    if is_spark_frame(entities):
        return entities
    if isinstance(entities, pd.DataFrame):
        frame = entities
        ts = frame.get(EVENT_TIMESTAMP)
        if ts is not None and isinstance(ts.dtype, pd.DatetimeTZDtype):  # floored to µs, as DuckDB does
            frame = frame.assign(**{EVENT_TIMESTAMP: ts.dt.tz_convert("UTC").dt.floor("us").dt.as_unit("us")})
        return spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))
    path = os.fspath(entities)
    try:
        import pyarrow.dataset as ds

        schema = ds.dataset(path, format="parquet").schema
    except (pa.ArrowException, OSError) as exc:
        raise EntitySetError(f"entity set {shorten(path, 200, quote=False)} cannot be read as Parquet: "
                             f"{shorten(exc, 300, quote=False)}") from exc
    if EVENT_TIMESTAMP not in schema.names:
        raise EntitySetError(f"entity set {shorten(path, 200, quote=False)} has no {EVENT_TIMESTAMP!r} column "
                             f"(columns: {shorten(schema.names, 300)})")
    ts_type = schema.field(EVENT_TIMESTAMP).type
    if pa.types.is_timestamp(ts_type) and ts_type.tz is None:
        raise EntitySetError(f"entity set {shorten(path, 200, quote=False)}: {EVENT_TIMESTAMP!r} is timezone-naive; it must be "
                             "timezone-aware (e.g. pd.to_datetime(..., utc=True) before writing)")
    frame = spark.read.parquet(path)
    if pa.types.is_timestamp(ts_type) and ts_type.unit == "ns":  # read as an integer (spark_session's setting)
        floored = F.expr(f"({EVENT_TIMESTAMP} - pmod({EVENT_TIMESTAMP}, 1000)) div 1000")  # floor, as DuckDB does
        frame = frame.withColumn(EVENT_TIMESTAMP, F.timestamp_micros(floored))
    return frame


def check_entity_set(frame, specs: Sequence[FeatureViewSpec]) -> None:
    """Timestamps tz-aware and non-null; every view's join key present, of its type, non-null (one pass)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    fields = {f.name: f.dataType for f in frame.schema.fields}
    if EVENT_TIMESTAMP not in fields:
        raise EntitySetError(f"the entity set has no {EVENT_TIMESTAMP!r} column (columns: {shorten(list(fields), 300)})")
    ts = fields[EVENT_TIMESTAMP]
    if isinstance(ts, T.TimestampNTZType):
        raise EntitySetError(f"the entity set's {EVENT_TIMESTAMP!r} is timezone-naive (TIMESTAMP_NTZ); it must be "
                             "a TIMESTAMP (an instant)")
    if not isinstance(ts, T.TimestampType):
        raise EntitySetError(f"the entity set's {EVENT_TIMESTAMP!r} is {ts.simpleString()}; it must be a timestamp")
    checked = [EVENT_TIMESTAMP]
    for spec in specs:
        key = spec.entity.join_key
        if key not in fields:
            raise EntitySetError(f"the entity set lacks join key {key!r} of feature view {spec.name!r}")
        want_int = spec.entity.dtype == "int64"
        if not isinstance(fields[key], T.IntegralType if want_int else T.StringType):
            raise EntitySetError(f"the entity set's {key!r} is {fields[key].simpleString()}, but feature view "
                                 f"{spec.name!r} keys are {spec.entity.dtype}")
        checked.append(key)
    checked = list(dict.fromkeys(checked))
    counts = frame.agg(*[F.sum(F.col(c).isNull().cast("long")).alias(f"c{i}") for i, c in enumerate(checked)]).first()
    for i, column in enumerate(checked):
        if counts[f"c{i}"]:
            sample = [r.asDict() for r in frame.where(F.col(column).isNull()).limit(SAMPLE_ROWS).collect()]
            raise EntitySetError(f"the entity set's {column!r} has {counts[f'c{i}']} null(s); first rows: {shorten(sample, 500)}")


def write_parquet(frame, path) -> Path:
    """Spark writes `frame` as a directory of Parquet files at `path` (a local or mounted path), all or
    nothing: into a hidden sibling first, renamed into place once Spark's job committed; a failed job
    leaves `path` as it was."""
    target = Path(path).absolute()
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        frame.write.parquet(str(staging))
        if target.exists():
            old = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
            target.rename(old)
            staging.rename(target)
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return Path(path)


def executor_errors(exc: Exception) -> Exception:
    """A platform error raised inside a Spark task reaches the driver as Spark's PythonException, its
    traceback as text: raised again as the platform's own type, with its message."""
    text = str(exc)
    for error in (RequestFeatureError,):
        marker = f"{error.__name__}: "
        if marker in text:
            return error(text.split(marker, 1)[1].strip().splitlines()[0])
    return exc


__all__ = ["EntitySetError", "check_entity_set", "executor_errors", "is_spark_frame", "read_entity_set", "write_parquet"]
