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

import functools
import os
import sys
import threading
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa

from feature_platform.compute.chunks import DayChunk, cast_to_spec, overflow_error
from feature_platform.compute.window_aggregate import raw_range_for
from feature_platform.config import Settings
from feature_platform.dtypes import INT64_MAX
from feature_platform.errors import FeaturePlatformError
from feature_platform.repo import Repository
from feature_platform.sources import reader_for
from feature_platform.sources.parquet import ParquetSource
from feature_platform.sources.rows import FLOAT_EXACT, SAMPLE_ROWS, lossy
from feature_platform.spec import Agg, FeatureViewSpec
from feature_platform.vocabulary import EVENT_TIMESTAMP, day_end

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


_shipped: set[tuple[int, str]] = set()  # (SparkContext id, repository) already added to the executors' path


def ship_repository(spark, repo: Repository) -> None:
    """Make the feature repository importable on Spark's Python workers (local or a cluster's executors): its
    package, zipped, is added to their path once per session. Request-time functions and anything else a
    worker unpickles by reference to the repository's modules need it."""
    import tempfile
    import zipfile

    if repo.directory is None or not (repo.directory / "__init__.py").is_file():
        return  # a module on the workers' path already, or a single file (nothing of it is pickled by reference)
    key = (id(spark.sparkContext), str(repo.directory))
    with _lock:
        if key in _shipped:
            return
        target = Path(tempfile.mkdtemp(prefix="fp_repo_")) / f"{repo.directory.name}.zip"
        with zipfile.ZipFile(target, "w") as archive:
            for file in sorted(repo.directory.rglob("*.py")):
                archive.write(file, Path(repo.directory.name) / file.relative_to(repo.directory))
        spark.sparkContext.addPyFile(str(target))
        _shipped.add(key)


class SparkEngine:
    name = "spark"

    def __init__(self, settings: Settings, repo: Repository):
        self.settings = settings
        self.repo = repo
        self.spark = spark_session(settings.spark_master)
        ship_repository(self.spark, repo)

    def compute_chunk(self, spec: FeatureViewSpec, days: Sequence[date]) -> DayChunk:
        wanted = sorted(set(days))
        start, end = raw_range_for(spec, wanted[0], wanted[-1])
        reader = reader_for(self.repo.source_of(spec), self.settings, self.repo.directory)
        events = read_source(self.spark, reader, start, end)
        return _to_chunk(spec, _check_fits(spec, aggregate(spec, events, wanted).toPandas()), wanted)

    def sync_online(self, spec: FeatureViewSpec, rows: pd.DataFrame, online, sync_online) -> int:
        """Write `rows` to the online store from Spark's executors with the backend's `sync_online`
        (`backends.spark_sync`: Redis), newest-wins."""
        return sync_online(self.spark.createDataFrame(rows), spec, self.settings, online.store.config.project)


def read_source(spark, reader, start, end):
    """The source's raw events with `start <= timestamp < end`, in the source's schema, checked as the pandas
    engine checks them (`sources.parquet`): the same files and rows are refused with the same errors.

    Files are listed and their schemas checked by the reader (Parquet metadata only); files of the same
    declared types are read together with that read schema, converted to the source's schema, and unioned,
    so no file is read (or silently cast) in another file's types. A PostgreSQL source is read (with its
    time range in the query) and checked by its reader, then handed to Spark."""
    from pyspark.sql import functions as F

    if not isinstance(reader, ParquetSource):
        rows = reader.read(start, end)
        return spark.createDataFrame(rows.astype({c: object for c in rows.select_dtypes("string").columns}))
    groups: dict[tuple, list[str]] = {}
    for fragment in reader.files():
        groups.setdefault(_file_types(reader, fragment), []).append(fragment.path)
    flags = sorted({(name, kind) for types in groups for name, kind in _lossy_columns(reader, types)},
                   key=lambda flag: reader.schema.names.index(flag[0]))
    frames = [_read_files(spark, reader, types, paths, flags) for types, paths in groups.items()]
    df = functools.reduce(lambda a, b: a.unionByName(b), frames)
    ts = F.col(reader.timestamp)
    # Rows without a time are kept, whatever the range: the range filter alone would drop them silently.
    df = df.where(((ts >= F.lit(pd.Timestamp(start).to_pydatetime())) & (ts < F.lit(pd.Timestamp(end).to_pydatetime())))
                  | ts.isNull())
    _check_values(df, reader, flags)
    return df.select(*reader.schema.names)


_FILE = "__fp_file"


def _flag(name: str, kind: str) -> str:
    return f"__fp_{kind.replace('-', '_')}_{name}"


def _file_types(reader, fragment) -> tuple:
    """The declared columns' Arrow types in this file, and whether its time is a legacy INT96."""
    physical = fragment.physical_schema
    types = tuple(physical.field(name).type for name in reader.schema.names)
    parquet = fragment.metadata.schema
    int96 = any(parquet.column(i).path == reader.timestamp and parquet.column(i).physical_type == "INT96"
                for i in range(len(parquet)))
    return (*types, int96)


def _lossy_columns(reader, types: tuple) -> list[tuple[str, str]]:
    return [(want.name, kind) for want, got in zip(reader.schema, types)
            if (kind := lossy(got, want.type)) is not None and not (want.name == reader.timestamp and types[-1])]


def _read_type(arrow_type: pa.DataType, int96: bool) -> str:
    """The Spark type Spark reads this Parquet column as (an explicit read schema: the other columns of the
    file, of any type, are never converted)."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_timestamp(arrow_type):
        if int96:
            return "timestamp"
        if arrow_type.unit == "ns":
            return "bigint"  # spark.sql.legacy.parquet.nanosAsLong: Spark has no nanosecond type
        return "timestamp" if arrow_type.tz else "timestamp_ntz"
    if pa.types.is_floating(arrow_type):
        return "float" if pa.types.is_float32(arrow_type) else "double"
    if pa.types.is_integer(arrow_type):
        return {(True, 8): "tinyint", (True, 16): "smallint", (True, 32): "int", (True, 64): "bigint",
                (False, 8): "smallint", (False, 16): "int", (False, 32): "bigint", (False, 64): "decimal(20,0)",
                }[(pa.types.is_signed_integer(arrow_type), arrow_type.bit_width)]
    return "string"


def _read_files(spark, reader, types: tuple, paths: list[str], flags: list[tuple[str, str]]):
    """Files of one set of declared types as the source's schema, with the file of each row and one column
    per lossy-cast check in `flags` (the rows a cast would lose, as pandas' `lossy`): those rows
    get a harmless value (so that ANSI casts never fail) and keep their written value as text."""
    from pyspark.sql import functions as F

    int96 = types[-1]
    read = ", ".join(f"`{name}` {_read_type(got, int96)}" for name, got in zip(reader.schema.names, types)
                     if not pa.types.is_null(got))
    df = spark.read.schema(read).parquet(*paths) if read else spark.read.parquet(*paths)
    raw, checks = [], {}
    for want, got in zip(reader.schema, types):
        column = F.lit(None) if pa.types.is_null(got) else F.col(f"`{want.name}`")
        kind = None if want.name == reader.timestamp and int96 else lossy(got, want.type)
        if kind is not None:
            bad = F.coalesce(_lossy(column, got, kind), F.lit(False))
            checks[(want.name, kind)] = (bad, column.cast("string"))
            # Nanoseconds floored to whole microseconds: the row stays in or out of the time range as it is.
            neutral = column - F.pmod(column, F.lit(1000)) if kind == "sub-microsecond" else F.lit(0)
            column = F.when(bad, neutral).otherwise(column)
        raw.append(column.alias(want.name))
    raw.append(F.col("_metadata.file_path").alias(_FILE))
    for name, kind in flags:
        bad, written = checks.get((name, kind), (F.lit(False), F.lit(None).cast("string")))
        raw += [bad.alias(_flag(name, kind)), written.alias(_flag(name, kind) + "_written")]
    df = df.select(*raw)
    out = []
    for want, got in zip(reader.schema, types):
        column = F.col(want.name)
        if want.name == reader.timestamp:
            if pa.types.is_timestamp(got) and got.unit == "ns" and not int96:
                column = F.timestamp_micros(F.expr(f"{want.name} div 1000"))  # whole microseconds (checked)
            else:
                column = column.cast("timestamp")  # a naive (NTZ) time is read in the session zone, UTC
        else:
            column = column.cast(_spark_type(want.type))
        out.append(column.alias(want.name))
    return df.select(*out, _FILE, *[c for name, kind in flags for c in (_flag(name, kind), _flag(name, kind) + "_written")])


def _lossy(column, got: pa.DataType, kind: str):
    """The Spark form of `sources.rows._lossy_mask`."""
    from pyspark.sql import functions as F

    if kind == "non-integer":
        return (F.isnan(column) | (F.abs(column) == float("inf")) | (F.pmod(column, F.lit(1.0)) != 0)
                | (column >= F.lit(2.0**63)) | (column < F.lit(-(2.0**63))))
    if kind == "out-of-range":
        if pa.types.is_uint64(got.value_type if pa.types.is_dictionary(got) else got):
            return column > F.lit(INT64_MAX)
        return F.abs(column) > F.lit(FLOAT_EXACT)
    return F.pmod(column, F.lit(1000)) != 0  # sub-microsecond: nanoseconds read as an integer


def _spark_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type):
        return "double"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    return "string"


def _check_values(df, reader, flags: list[tuple[str, str]]) -> None:
    """The reader's declared row rules (`SourceRows.value_checks`) in one Spark pass, per file: rows a cast
    would lose, and no null, out-of-range or NaN/infinite value in the rows read, or nothing is computed (a
    mean would skip a NaN silently). The first file with a problem is named, as the pandas engine names it."""
    from pyspark.sql import functions as F

    checks = [(name, kind, F.col(_flag(name, kind)), _flag(name, kind) + "_written") for name, kind in flags]
    for name, what, rule in reader.value_checks():
        column = F.col(name)
        if what == "null":
            cond = column.isNull()
        elif what == "NaN or infinite":
            cond = F.isnan(column) | (F.abs(column) == float("inf"))
        elif rule[0] == "ge":
            cond = column < F.lit(rule[1])
        elif rule[0] == "le":
            cond = column > F.lit(rule[1])
        else:
            cond = ~column.isin(list(rule[1]))
        checks.append((name, what, cond, None))
    counts = [F.sum(F.when(cond, 1).otherwise(0)).alias(f"c{i}") for i, (_, _, cond, _) in enumerate(checks)]
    bad = (df.groupBy(_FILE).agg(*counts).where(functools.reduce(lambda a, b: a | b, [F.col(f"c{i}") > 0
                                                                                    for i in range(len(checks))]))
           .orderBy(_FILE).first())
    if bad is None:
        return
    rows = df.where(F.col(_FILE) == bad[_FILE])
    found = []
    for i, (name, what, cond, written) in enumerate(checks):
        if not bad[f"c{i}"]:
            continue
        shown = [F.unix_micros(F.col(c)).alias(c) if c == reader.timestamp else F.col(c) for c in reader.shown(name)]
        if written:
            shown.append(F.col(written).alias("__fp_written"))
        sample = []
        for row in rows.where(cond).select(*shown).limit(SAMPLE_ROWS).collect():
            values = row.asDict()
            if values.get(reader.timestamp) is not None:  # as pyarrow shows it (collect() uses the local zone)
                values[reader.timestamp] = pd.Timestamp(values[reader.timestamp], unit="us", tz="UTC").to_pydatetime()
            if written:
                values[name] = _written(values.pop("__fp_written"), what)
            sample.append(values)
        found.append((name, what, bad[f"c{i}"], sample))
    raise reader.rows_error(_local_path(bad[_FILE]), found)


def _written(text: str | None, what: str):
    """A refused value as written (kept as text across files of other types), shown as pyarrow shows it."""
    if text is None:
        return None
    if what == "sub-microsecond":
        return pd.Timestamp(int(text), unit="ns", tz="UTC")
    try:
        return int(text)
    except ValueError:
        return float(text)  # Spark writes NaN and Infinity as Python reads them


def _local_path(uri: str) -> str:
    """Spark's `file:/a%20b/c.parquet` as `/a b/c.parquet` (the path the pandas engine names)."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("file", "") else uri


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
