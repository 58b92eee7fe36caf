"""Point-in-time correct joins executed in Spark: `compute.point_in_time`'s semantics, for training sets
whose feature tables are too large for one machine's DuckDB.

For every entity row at time t and every feature view: the row of that entity with the latest feature
timestamp in `[t - ttl, t]` (both ends inclusive), ties on feature timestamp broken by the latest created
timestamp; otherwise null. Executed as an equi-join on the key with the TTL range as the join condition,
then `row_number()` over each entity row: the feature tables stay in Spark (only the result, one row per
entity row, comes back to the driver). Proven equal to the DuckDB join and to Feast by
feature_platform_tests/test_spark_training_sets.py.

Times are compared as integer microseconds since the epoch (`unix_micros`), so no session or JVM time
zone can shift an edge; entity times finer than a microsecond are floored, as DuckDB does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from feature_platform.dtypes import spark_type
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.schema import arrow_schema
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP

ROW = "__fp_row"  # internal columns: spec names are snake_case starting with a letter, so never clash
_T = "__fp_t"


@dataclass(frozen=True)
class SparkViewJoin:
    """One feature view to join: its table (a Spark DataFrame), key, TTL and wanted columns."""

    table: object  # pyspark.sql.DataFrame with the key, features, event and created timestamps
    join_key: str
    ttl: timedelta
    features: tuple[str, ...]
    outputs: tuple[str, ...]  # the column names they get in the result


def entities_frame(spark, entity_df: pd.DataFrame, keys: Sequence[str]):
    """The entity rows as a Spark DataFrame: keys, `__fp_t` (event time in epoch microseconds), `__fp_row`."""
    ts = entity_df[EVENT_TIMESTAMP].dt.tz_convert("UTC")
    micros = (ts.dt.as_unit("ns").astype("int64") // 1000).to_numpy()  # floor: DuckDB truncates the same way
    table = pa.table({**{k: pa.array(entity_df[k].to_numpy()) for k in keys},
                      _T: pa.array(micros, pa.int64()), ROW: pa.array(range(len(entity_df)), pa.int64())})
    return spark.createDataFrame(table)


def spark_entities(frame):
    """A Spark DataFrame of entity rows (join keys, `event_timestamp`, any other columns), with `__fp_t`
    and `__fp_row` added: the row ids follow the input's order and are kept stable by persisting (they
    are joined on several times)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    return (frame.withColumn(_T, F.unix_micros(F.col(EVENT_TIMESTAMP)))
            .withColumn(ROW, F.monotonically_increasing_id()).persist(StorageLevel.MEMORY_AND_DISK))


def join_features(entities, joins: Sequence[SparkViewJoin]):
    """`entities` (keys, `__fp_t`, `__fp_row` and any other columns) left-joined with each view's
    output columns: a Spark DataFrame with the same rows."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    result = entities
    for i, j in enumerate(joins):
        ttl_us = j.ttl // timedelta(microseconds=1)
        alias = f"__fp_f{i}"
        e = entities.select(F.col(j.join_key).alias("__fp_k"), _T, ROW)
        # Prune the table to what some entity row can see (per key: earliest t - ttl .. latest t), as DuckDB does.
        bounds = e.groupBy(F.col("__fp_k").alias("__fp_vk")).agg((F.min(_T) - F.lit(ttl_us)).alias("__fp_lo"), F.max(_T).alias("__fp_hi"))
        v = j.table.select(F.col(j.join_key).alias("__fp_vk"), F.unix_micros(F.col(EVENT_TIMESTAMP)).alias("__fp_ft"),
                           F.unix_micros(F.col(CREATED_TIMESTAMP)).alias("__fp_ct"),
                           *[F.col(f).alias(f"{alias}_{n}") for n, f in enumerate(j.features)])
        v = (v.join(bounds, "__fp_vk")
             .where(F.col("__fp_ft").between(F.col("__fp_lo"), F.col("__fp_hi"))).drop("__fp_lo", "__fp_hi"))
        # The range join: equal key, feature time in [t - ttl, t]; then the latest (feature, created) per row.
        ft, t = F.col("__fp_ft"), F.col(_T)
        candidates = e.join(v, (F.col("__fp_k") == F.col("__fp_vk")) & (ft <= t) & (ft >= t - F.lit(ttl_us)))
        order = Window.partitionBy(ROW).orderBy(F.col("__fp_ft").desc(), F.col("__fp_ct").desc_nulls_last())
        best = (candidates.withColumn("__fp_rank", F.row_number().over(order)).where(F.col("__fp_rank") == 1)
                .select(ROW, *[F.col(f"{alias}_{n}").alias(out) for n, out in enumerate(j.outputs)]))
        result = result.join(best, ROW, "left")
    return result


def spark_point_in_time_join(spark, entity_df: pd.DataFrame, joins: Sequence[SparkViewJoin]) -> pd.DataFrame:
    """Feature columns for `entity_df` (same row count and order), one per `SparkViewJoin.outputs` entry.

    `entity_df` must hold every join key and a tz-aware `event_timestamp`. Returns only the feature
    columns, positionally aligned with `entity_df` (integers as nullable Int64, so nothing becomes float).
    """
    keys = sorted({j.join_key for j in joins})
    outputs = [out for j in joins for out in j.outputs]
    arrow = join_features(entities_frame(spark, entity_df, keys), joins).orderBy(ROW).select(*outputs).toArrow()
    return arrow_to_pandas(arrow)


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    # Arrow keeps integer nulls as nulls; pandas' default would turn such a column into floats.
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype()}.get)


def offline_frame(spark, store, spec: FeatureViewSpec, lo: pd.Timestamp, hi: pd.Timestamp):
    """The view's offline rows with `lo <= event_timestamp <= hi` as a Spark DataFrame (reading schema), as the
    offline store hands them over: Parquet files are read by Spark itself, on the executors, with the time filter
    pushed down (`parquet_offline_frame`); PostgreSQL has no JDBC driver on Spark's classpath, so its rows are
    read by the store on the driver and handed to Spark as Arrow (`arrow_offline_frame`), which bounds a Spark
    training set on PostgreSQL by the driver's memory."""
    return store.spark_frame(spark, spec, lo, hi)


def parquet_offline_frame(spark, directory: Path, spec: FeatureViewSpec, lo: pd.Timestamp, hi: pd.Timestamp):
    """A Parquet offline table's rows in `lo..hi`, read by Spark itself on the executors (time filter pushed down)."""
    from pyspark.sql import functions as F

    schema = arrow_schema(spec, reading=True)
    files = sorted(str(p) for p in directory.glob("*.parquet") if not p.name.startswith(".")) \
        if directory.exists() else []
    if not files:
        return spark.createDataFrame(schema.empty_table())
    # By name across files: a field added in place (older files lack it) reads as null.
    frame = spark.read.option("mergeSchema", "true").parquet(*files)
    ts = F.col(EVENT_TIMESTAMP)
    frame = frame.where((ts >= F.lit(lo.to_pydatetime())) & (ts <= F.lit(hi.to_pydatetime())))
    present = set(frame.columns)
    missing = [f for f in schema if f.name not in present]  # a new field no segment has yet
    return frame.select(*[F.col(f.name) for f in schema if f.name in present],
                        *[F.lit(None).cast(spark_type(spec.field(f.name).dtype)).alias(f.name) for f in missing])


def arrow_offline_frame(spark, rows: pd.DataFrame, spec: FeatureViewSpec):
    """Offline rows read on the driver, handed to Spark as Arrow in the reading schema."""
    return spark.createDataFrame(pa.Table.from_pandas(rows, schema=arrow_schema(spec, reading=True),
                                                      preserve_index=False))


__all__ = ["SparkViewJoin", "arrow_to_pandas", "entities_frame", "join_features", "offline_frame", "parquet_offline_frame", "arrow_offline_frame", "spark_entities",
           "spark_point_in_time_join"]
