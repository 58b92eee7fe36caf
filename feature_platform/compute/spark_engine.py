"""The Spark engine: a view's declared `WindowAggregation` executed as Spark DataFrame operations (PySpark).

Generic over the spec, like the pandas engine (`rolling_window`): every event is exploded into the
partition days whose window `[D+1 - window, D+1)` holds it (and the day after, for closing rows), grouped
by (entity, day) with each `Agg`'s Spark function; the closing rows (active the day before, not today) get
each `Agg.empty_value`.
Only the chunk's result rows come back to the driver, as the same `DayChunk` (order, dtypes) the pandas
engine yields, so validation and the offline/online writes are the pipeline's usual code.

Semantics kept equal to pandas: nulls and NaN are skipped by every function, a sum of nothing is 0, `mode`
is the most frequent non-null value with ties to the smallest (Spark compares strings by UTF-8 bytes, which
is code point order, as Python does), days are UTC (the session's time zone is pinned).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from feature_platform.compute.window_aggregate import (
    EVENT_TIMESTAMP,
    DayChunk,
    cast_to_spec,
    day_end,
    overflow_error,
    raw_range_for,
)
from feature_platform.config import Settings
from feature_platform.errors import FeaturePlatformError, SourceDataError
from feature_platform.sources import sessions
from feature_platform.spec import Agg, FeatureViewSpec

_EPOCH = date(1970, 1, 1)
_DAY = "__fp_day"  # internal columns: spec names are snake_case starting with a letter, so never clash
_VALUE = "__fp_v{}"
_HIGH, _LOW = "__fp_high{}", "__fp_low{}"  # an int64 sum's exact high and low parts, where it overflows
# Shuffle partitions in local mode: the default 200 would make ~200 tiny tasks per stage.
LOCAL_SHUFFLE_PARTITIONS = 4
_lock = threading.Lock()


def spark_session(master: str, conf: dict[str, str] | None = None):
    """The process's SparkSession (created on first use; a second master in the same process is an error).
    `conf`: more Spark settings for the session's creation (e.g. JVM options)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise FeaturePlatformError("FEATURE_PLATFORM_ENGINE=spark needs PySpark: pip install -c requirements.lock "
                                   "-e '.[spark]' (and Java 17 on PATH)") from exc
    builder = (SparkSession.builder.master(master).appName("feature_platform")
               .config("spark.sql.session.timeZone", "UTC")  # partition days are UTC days
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               # pandas writes nanosecond timestamps, which Spark refuses by default: read them as integers
               .config("spark.sql.legacy.parquet.nanosAsLong", "true")
               # what Spark writes (training sets) reads back as tz-aware UTC times, not INT96's naive ones
               .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
               .config("spark.ui.showConsoleProgress", "false"))
    if master.startswith("local"):
        builder = (builder.config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
                   .config("spark.ui.enabled", "false")  # in-process: no web UI to bind a port for
                   .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1"))
        # Local Python workers (the online sync's) must import this interpreter's packages; PySpark reads the
        # variable when the context starts (a cluster's executors set it in their own environment).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for name, value in (conf or {}).items():
        builder = builder.config(name, value)
    with _lock:
        try:
            spark = builder.getOrCreate()
        except Exception as exc:  # noqa: BLE001 - py4j raises plain runtime errors when the JVM cannot start
            raise FeaturePlatformError(f"the Spark engine could not start Spark (master {master!r}; Java 17 must be "
                                       f"on PATH or in JAVA_HOME): {exc}") from exc
    if spark.sparkContext.master != master:
        raise FeaturePlatformError(f"a SparkSession with master {spark.sparkContext.master!r} already runs in this "
                                   f"process; FEATURE_PLATFORM_SPARK_MASTER={master!r} cannot start a second one")
    return spark


class SparkEngine:
    name = "spark"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.spark = spark_session(settings.spark_master)

    def compute_chunk(self, spec: FeatureViewSpec, days: Sequence[date]) -> DayChunk:
        wanted = sorted(set(days))
        start, end = raw_range_for(spec, wanted[0], wanted[-1])
        events = read_source(self.spark, spec, self.settings, start, end)
        return _to_chunk(spec, _check_fits(spec, aggregate(spec, events, wanted).toPandas()), wanted)

    def sync_online(self, spec: FeatureViewSpec, rows: pd.DataFrame, online) -> int:
        """Write `rows` to the Redis online store from Spark's executors (`spark_online_sync`), newest-wins."""
        from feature_platform.compute.spark_online_sync import sync_online

        return sync_online(self.spark.createDataFrame(rows), spec, self.settings, online.store.config.project)


def read_source(spark, spec: FeatureViewSpec, settings: Settings, start, end):
    """The view's raw events with `start <= timestamp < end`, in the source's schema, checked as the pandas
    engine checks them (`sources.sessions`): the same files and rows are refused with the same errors."""
    from pyspark.sql import functions as F

    if spec.aggregation.source != sessions.NAME:
        raise FeaturePlatformError(f"feature view {spec.name!r}: the Spark engine has no reader for source "
                                   f"{spec.aggregation.source!r}")
    path = settings.sessions_path
    if not path.exists():
        sessions.read_sessions(path, start, end)  # raises its SourceDataError (what to set, what to run)
    try:  # schemas and null times of every file, from Parquet metadata only (cached per file version)
        import pyarrow.dataset as ds

        dataset = ds.dataset(str(path), format="parquet")
        for fragment in dataset.get_fragments():
            sessions._check_file(fragment)
    except (pa.ArrowException, OSError) as exc:
        raise SourceDataError(f"sessions source {path} cannot be read as Parquet: {exc}") from exc
    sessions._check_columns(dataset.schema, path)

    df = spark.read.parquet(str(path))
    ts = F.col(sessions.TIMESTAMP)
    nanos = dict(df.dtypes)[sessions.TIMESTAMP] == "bigint"  # a TIMESTAMP(NANOS) column, read as an integer
    if nanos:
        # pyarrow's cast to microseconds refuses to drop nanoseconds: refuse the same rows (_check_values)
        df = df.withColumn("__fp_ns", F.pmod(ts, F.lit(1000)) != 0)
        ts = F.timestamp_micros(F.expr(f"({sessions.TIMESTAMP} - pmod({sessions.TIMESTAMP}, 1000)) div 1000"))
    else:
        ts = ts.cast("timestamp")  # a naive (NTZ) time is read in the session zone, UTC
    df = df.select(*[(ts if f.name == sessions.TIMESTAMP else F.col(f.name).cast(_spark_type(f.type))).alias(f.name)
                     for f in sessions.SCHEMA], *(["__fp_ns"] if nanos else []))
    ts = F.col(sessions.TIMESTAMP)
    df = df.where((ts >= F.lit(pd.Timestamp(start).to_pydatetime())) & (ts < F.lit(pd.Timestamp(end).to_pydatetime())))
    _check_values(df, path, nanos)
    return df.drop("__fp_ns") if nanos else df


def _spark_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type):
        return "double"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    return "string"


def _check_values(df, path, nanos: bool = False) -> None:
    """`sources.sessions._check_values` in one Spark pass: no null, negative count or duration, NaN or
    infinite duration in the rows read, or nothing is computed (a mean would skip a NaN silently)."""
    from pyspark.sql import functions as F

    duration = F.col("duration_sec")
    checks = [(name, "null", F.col(name).isNull()) for name in sessions.SCHEMA.names]
    checks.append(("duration_sec", "NaN or infinite", F.isnan(duration) | (F.abs(duration) == float("inf"))))
    checks += [(name, "negative", F.col(name) < 0) for name in sessions._NON_NEGATIVE]
    if nanos:
        checks.append((sessions.TIMESTAMP, "sub-microsecond", F.col("__fp_ns")))
    counts = df.agg(*[F.sum(F.when(cond, 1).otherwise(0)).alias(f"c{i}") for i, (_, _, cond) in enumerate(checks)]
                    ).first()
    problems = [(name, what, cond, counts[f"c{i}"]) for i, (name, what, cond) in enumerate(checks) if counts[f"c{i}"]]
    if not problems:
        return
    lines = [f"sessions source {path}: {len(problems)} problem(s) in the rows read; nothing was computed"]
    for name, what, cond, n in problems:
        shown = ["session_id", "user_id", sessions.TIMESTAMP] + ([name] if name not in (
            "session_id", "user_id", sessions.TIMESTAMP) else [])
        sample = [row.asDict() for row in df.where(cond).select(*shown).limit(sessions.SAMPLE_ROWS).collect()]
        lines.append(f"  column {name!r}: {n} {what} value(s); first rows: {sessions._shorten(sample)}")
    raise SourceDataError("\n".join(lines))


def aggregate(spec: FeatureViewSpec, events, days: Sequence[date]):
    """A Spark DataFrame of the feature rows of `days`: join key, features (Spark types), `__fp_day` (days
    since 1970-01-01), ordered by day then key. Rows: every entity with an event in the day's window, plus
    a closing row (each `Agg.empty_value`) for each entity whose window was non-empty the day before only.
    Each int64 sum `i` adds `__fp_high{i}` and `__fp_low{i}`: its exact parts where it overflows, else null
    (`_check_fits` raises on them)."""
    from pyspark.sql import functions as F

    agg, key = spec.aggregation, spec.entity.join_key
    codes = [(d - _EPOCH).days for d in days]
    ts = F.col(agg.timestamp_column)
    window_us = agg.window // timedelta(microseconds=1)
    # Day D's window holds ts iff date(ts) <= D <= last = date(ts + window) - 1. Each event is also sent to
    # day last + 1, outside its window: a (key, day) group with no event inside is exactly a closing row
    # (the key was active the day before), so one aggregation gives both (as `rolling_window`'s grid does).
    first = F.datediff(F.to_date(ts), F.lit(_EPOCH))
    last = F.datediff(F.to_date(F.timestamp_micros(F.unix_micros(ts) + F.lit(window_us))), F.lit(_EPOCH)) - 1
    lo, hi = F.greatest(first, F.lit(codes[0])), F.least(last + 1, F.lit(codes[-1]))
    values = [_prepared(events, a).alias(_VALUE.format(i)) for i, a in enumerate(agg.aggs)]
    exploded = (events.where(F.col(key).isNotNull())
                .select(F.col(key), last.alias("__fp_last"), *values,
                        F.explode(F.when(lo <= hi, F.sequence(lo, hi)).otherwise(F.array().cast("array<int>")))
                        .alias(_DAY)))
    inside = F.col(_DAY) <= F.col("__fp_last")
    kinds = dict(exploded.dtypes)
    aggregations = []
    exact = set()  # the integer sums, computed exactly in two parts
    for i, a in enumerate(agg.aggs):
        value = F.when(inside, F.col(_VALUE.format(i)))
        if a.fn == "sum" and kinds[_VALUE.format(i)] in _INTEGRAL:
            # Spark's long sum wraps around (ANSI off) or fails without naming a row (ANSI on): as `rolling_window`
            # does, sum the signed high and the unsigned low 32 bits apart (no wrap below 2**31 events).
            value = value.cast("bigint")
            aggregations += [F.sum(F.shiftright(value, 32)).alias(_HIGH.format(i)),
                             F.sum(value.bitwiseAND(F.lit(0xFFFFFFFF))).alias(_LOW.format(i))]
            exact.add(i)
        else:
            aggregations.append(_spark_agg(a, value).alias(a.feature))
    grouped = exploded.groupBy(key, _DAY).agg(F.count(F.when(inside, F.lit(1))).alias("__fp_n"), *aggregations)
    closing = F.col("__fp_n") == 0
    types = dict(grouped.dtypes)
    features, parts = [], []
    for i, a in enumerate(agg.aggs):
        if i in exact:
            low = F.coalesce(F.col(_LOW.format(i)), F.lit(0))  # the sum of nothing is 0
            high = F.coalesce(F.col(_HIGH.format(i)), F.lit(0)) + F.shiftright(low, 32)
            low = low.bitwiseAND(F.lit(0xFFFFFFFF))
            if spec.field(a.feature).dtype == "int64":
                fits = high.between(-(2**31), 2**31 - 1)
                value = F.when(fits, F.shiftleft(high, 32).bitwiseOR(low))
                parts += [F.when(~fits, high).alias(_HIGH.format(i)), F.when(~fits, low).alias(_LOW.format(i))]
            else:  # a float feature: the exact sum, rounded once
                value = high.cast("double") * F.lit(2.0**32) + low.cast("double")
            empty = F.lit(a.empty_value).cast("bigint" if spec.field(a.feature).dtype == "int64" else "double")
        else:
            empty = F.lit(a.empty_value).cast(types[a.feature])
            value = F.coalesce(F.col(a.feature), empty) if a.fn == "mode" else F.col(a.feature)
        features.append(F.when(closing, empty).otherwise(value).alias(a.feature))
    return grouped.where(F.col(_DAY).isin(codes)).select(key, _DAY, *features, *parts).orderBy(_DAY, key)


_INTEGRAL = ("bigint", "int", "smallint", "tinyint")


def _check_fits(spec: FeatureViewSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` without the overflow parts, or `AggregationOverflowError` (as the pandas engine raises it) for its
    first row, by day then key, with an int64 sum (spec order) outside int64."""
    parts = [(i, a.feature) for i, a in enumerate(spec.aggregation.aggs) if _HIGH.format(i) in frame.columns]
    if not parts:
        return frame
    order = [f.name for f in spec.fields]
    parts.sort(key=lambda part: order.index(part[1]))
    high = frame[[_HIGH.format(i) for i, _ in parts]]
    bad = high.notna().to_numpy()
    if bad.any():
        row = int(bad.any(axis=1).argmax())
        i, name = parts[int(bad[row].argmax())]
        day = _EPOCH + timedelta(days=int(frame[_DAY].iloc[row]))
        entity = frame[spec.entity.join_key].iloc[row]
        value = int(frame[_HIGH.format(i)].iloc[row]) * 2**32 + int(frame[_LOW.format(i)].iloc[row])
        same_day = (frame[_DAY] == frame[_DAY].iloc[row]).to_numpy()
        raise overflow_error(spec, day, name, entity.item() if isinstance(entity, np.generic) else entity, value,
                             int(bad[same_day].sum()))
    return frame.drop(columns=[c for i, _ in parts for c in (_HIGH.format(i), _LOW.format(i))])


def _prepared(events, a: Agg):
    """The aggregated column as pandas sees it: NaN is a null (skipped), booleans add up as 0/1."""
    from pyspark.sql import functions as F

    column, kind = F.col(a.column), dict(events.dtypes)[a.column]
    if kind in ("double", "float"):
        return F.when(F.isnan(column), F.lit(None)).otherwise(column)
    if kind == "boolean" and a.fn in ("sum", "mean"):
        return column.cast("bigint")
    return column


def _spark_agg(a: Agg, column):
    from pyspark.sql import functions as F

    if a.fn == "count_distinct":
        return F.countDistinct(column)
    if a.fn == "count":
        return F.count(column)
    if a.fn == "sum":
        return F.coalesce(F.sum(column), F.lit(0))  # pandas: the sum of nothing (or of nulls) is 0
    if a.fn == "mode":
        return F.mode(column, deterministic=True)  # nulls skipped; a tie goes to the smallest value
    return {"mean": F.avg, "min": F.min, "max": F.max}[a.fn](column)


def _to_chunk(spec: FeatureViewSpec, frame: pd.DataFrame, days: Sequence[date]) -> DayChunk:
    """The driver-side result as the pandas engine's `DayChunk`: rows day by day, spec dtypes, feature
    timestamps `D+1 00:00` UTC."""
    codes = np.array([(d - _EPOCH).days for d in days])
    day_codes = frame.pop(_DAY).to_numpy(dtype=np.int64)
    bounds = np.searchsorted(day_codes, np.append(codes, codes[-1] + 1))
    typed = dict(cast_to_spec(spec, frame.reset_index(drop=True), copy=False).items())
    ends = pd.DatetimeIndex([day_end(d) for d in days]).as_unit("us")
    typed[EVENT_TIMESTAMP] = pd.Series(ends.repeat(np.diff(bounds)))
    return DayChunk(list(days), pd.DataFrame(typed), bounds)


__all__ = ["SparkEngine", "aggregate", "read_source", "spark_session"]
