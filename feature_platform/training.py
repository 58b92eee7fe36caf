"""Training sets: point-in-time correct features for an entity frame of keys, timestamps and labels.

Input checks run before any heavy work. The join itself is `compute.daily_join` for a batch view whose
offline table is daily partition files and `compute.point_in_time` (DuckDB) over any other table, or Feast's
`get_historical_features` when asked (`engine="feast"`), the reference the fast path is tested against, or
the same join in Spark (`engine="spark"`, `compute.spark_point_in_time`) for tables too large for one machine.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from feature_platform import request_time
from feature_platform.arguments import PATH_LIMIT, os_reason
from feature_platform.compute import daily_join, spark_entity_sets, spark_point_in_time
from feature_platform.compute.point_in_time import ViewJoin, point_in_time_join
from feature_platform.dtypes import is_key_dtype, serving_dtype, spark_type
from feature_platform.errors import (
    FeaturePlatformError,
    InvalidArgumentError,
    RequestFeatureError,
    UnknownFeatureViewError,
    shorten,
)
from feature_platform.features import resolve_features
from feature_platform.runtime import Runtime
from feature_platform.spec import FeatureViewSpec, TrainingSetSpec
from feature_platform.stores.schema import arrow_schema
from feature_platform.util.parquet_files import read_frame, write_frame
from feature_platform.versioning.deprecation import warn_deprecated
from feature_platform.vocabulary import EVENT_TIMESTAMP, full_feature_name

log = logging.getLogger(__name__)


class EntityFrameError(FeaturePlatformError, ValueError):
    """An entity frame that cannot be joined (missing/naive timestamps, bad keys)."""


def check_entity_frame(entity_df: pd.DataFrame, specs: Sequence[FeatureViewSpec]) -> None:
    if not isinstance(entity_df, pd.DataFrame):
        raise EntityFrameError(f"entity_df must be a pandas DataFrame, not {type(entity_df).__name__}")
    if EVENT_TIMESTAMP not in entity_df.columns:
        raise EntityFrameError(f"entity_df has no {EVENT_TIMESTAMP!r} column (columns: {shorten(list(entity_df.columns), 300)})")
    ts = entity_df[EVENT_TIMESTAMP]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        kind = "timezone-naive" if pd.api.types.is_datetime64_dtype(ts.dtype) else f"of dtype {ts.dtype}"
        raise EntityFrameError(
            f"entity_df[{EVENT_TIMESTAMP!r}] is {kind}; it must be timezone-aware (e.g. pd.to_datetime(..., utc=True))"
        )
    if ts.isna().any():
        raise EntityFrameError(f"entity_df[{EVENT_TIMESTAMP!r}] has nulls at rows {list(ts[ts.isna()].index[:5])}")
    for spec in specs:
        key = spec.entity.join_key
        if key not in entity_df.columns:
            raise EntityFrameError(f"entity_df lacks join key {key!r} of feature view {spec.name!r}")
        column = entity_df[key]
        if not is_key_dtype(spec.entity.dtype, column.dtype):
            raise EntityFrameError(
                f"entity_df[{key!r}] has dtype {column.dtype}, but feature view {spec.name!r} keys are {spec.entity.dtype}"
            )
        if column.isna().any():
            raise EntityFrameError(f"entity_df[{key!r}] has nulls at rows {list(column[column.isna()].index[:5])}")


def training_set(runtime: Runtime, entity_df: pd.DataFrame, features, *, full_feature_names: bool = False,
                 engine: str = "duckdb") -> pd.DataFrame:
    """`entity_df` (unchanged, same rows and order) with one column per requested feature."""
    plan = request_time.plan(runtime.repo, features, full_feature_names)
    if isinstance(entity_df, pd.DataFrame) and (clash := request_time.column_clashes(plan.outputs, entity_df.columns,
                                                                                    "entity_df")):
        raise EntityFrameError(clash)
    if plan.request_views:  # fetch the stored inputs, then compute the request-time features from them
        request = request_time.request_frame(plan, entity_df, "entity_df") if isinstance(entity_df, pd.DataFrame) \
            else None
        inputs = entity_df
        if isinstance(entity_df, pd.DataFrame):  # a column of the caller named like an input (not an output)
            inputs = entity_df.drop(columns=[r.replace(":", "__") for r in plan.stored
                                             if r.replace(":", "__") in entity_df.columns])
        stored = training_set(runtime, inputs, list(plan.stored), full_feature_names=True, engine=engine)
        return entity_df.assign(**request_time.assemble(plan, stored, request))
    columns = resolve_features(runtime.repo, features, full_feature_names)
    specs = {c.view: runtime.repo.view(c.view) for c in columns}
    check_entity_frame(entity_df, list(specs.values()))
    if engine == "feast":
        values = _feast_join(runtime, entity_df, columns)
    elif engine == "duckdb":
        values = _duckdb_join(runtime, entity_df, columns, specs)
    elif engine == "spark":
        values = _spark_join(runtime, entity_df, columns, specs)
    else:
        raise ValueError(f"engine must be 'duckdb', 'spark' or 'feast', not {shorten(engine)}")
    out = entity_df.copy()
    for c in columns:
        out[c.column] = pd.Series(values[c.column].array, index=out.index).astype(
            serving_dtype(specs[c.view].field(c.feature).dtype))
    return out


def warn_deprecated_views(runtime: Runtime, features) -> None:
    """Warn of each deprecated view `features` reads (the stored views, request-time features' inputs included)."""
    stored = request_time.plan(runtime.repo, features, True).stored
    warn_deprecated(runtime.repo.view(view) for view in dict.fromkeys(ref.partition(":")[0] for ref in stored))


def training_set_as(runtime: Runtime, entity_df, features, *, full_feature_names: bool, output: str,
                    path: str | os.PathLike | None, engine: str):
    """`FeaturePlatform.training_set` of checked arguments: an entity set kept in Spark (a Parquet path or a Spark
    DataFrame, with `engine="spark"`) stays there, any other is joined here; the set is returned as `output` or
    written to `path`."""
    in_spark = not isinstance(entity_df, pd.DataFrame) and (
        isinstance(entity_df, (str, os.PathLike)) or spark_entity_sets.is_spark_frame(entity_df))
    if engine == "spark" and (in_spark or output == "spark"):
        persisted: list = []  # a returned Spark DataFrame keeps them (released when Spark collects it)
        frame = spark_training_set(runtime, entity_df, features, full_feature_names=full_feature_names,
                                   persisted=persisted)
        if output == "spark" and path is None:
            return frame
        try:
            if path is not None:
                return spark_entity_sets.write_parquet(frame, path)
            table = frame.toArrow()
            return table if output == "arrow" else spark_point_in_time.arrow_to_pandas(table)
        except Exception as exc:
            raised = spark_entity_sets.executor_errors(exc)
            if raised is exc:
                raise
            raise raised from None
        finally:
            for rows in persisted:
                rows.unpersist()
    if output == "spark":
        raise InvalidArgumentError("output='spark' needs engine='spark'")
    if in_spark:
        if not isinstance(entity_df, (str, os.PathLike)):
            raise InvalidArgumentError(f"a Spark DataFrame entity set needs engine='spark', not {engine!r}")
        entity_df = _read_entity_parquet(entity_df)
    frame = training_set(runtime, entity_df, features, full_feature_names=full_feature_names, engine=engine)
    if path is not None:
        try:
            write_frame(frame, path)
        except OSError as exc:  # e.g. a directory there, no permission, the disk full
            raise InvalidArgumentError(f"path {shorten(os.fspath(path), PATH_LIMIT)}: the training set cannot be "
                                       f"written there ({os_reason(exc)})") from None
        return Path(path)
    if output == "arrow":
        import pyarrow as pa

        return pa.Table.from_pandas(frame, preserve_index=False)
    return frame


def _read_entity_parquet(path) -> pd.DataFrame:
    try:
        return read_frame(path)
    except (OSError, ValueError) as exc:  # missing, a directory of something else, not Parquet
        reason = os_reason(exc) if isinstance(exc, OSError) else shorten(str(exc), 200, quote=False)
        raise EntityFrameError(f"entity_df {shorten(os.fspath(path), PATH_LIMIT)} cannot be read as Parquet: "
                               f"{reason}") from None


def _duckdb_join(runtime: Runtime, entity_df: pd.DataFrame, columns, specs) -> pd.DataFrame:
    if entity_df.empty:
        return pd.DataFrame({c.column: pd.Series([], dtype=object) for c in columns})
    ts = entity_df[EVENT_TIMESTAMP].dt.tz_convert("UTC")
    values = {}
    con = duckdb.connect()
    try:
        joins = []
        for i, (view, spec) in enumerate(specs.items()):
            lo, hi = ts.min() - pd.Timedelta(spec.ttl), ts.max()
            mine = [c for c in columns if c.view == view]
            # A batch view's offline table has one row per (key, partition timestamp) by construction, and
            # every partition timestamp is a UTC midnight (the end of its day).
            batch = spec.aggregation is not None
            if batch and (read := _from_partition_files(runtime, entity_df[spec.entity.join_key], ts, spec, mine,
                                                        lo, hi)) is not None:
                values.update(read)
                continue
            name = f"__fp_view_{i}"
            runtime.offline.register_duckdb(con, spec, name, lo, hi)
            joins.append(ViewJoin(table=name, join_key=spec.entity.join_key, ttl=spec.ttl,
                                  features=tuple(c.feature for c in mine), outputs=tuple(c.column for c in mine),
                                  unique=batch, daily=batch))
        if joins:
            frame = entity_df.assign(**{EVENT_TIMESTAMP: ts})
            values.update(point_in_time_join(con, frame, joins))
    finally:
        con.close()
    return pd.DataFrame(values)  # every column positional (0..n-1), as the caller reads them


def _from_partition_files(runtime: Runtime, keys: pd.Series, ts: pd.Series, spec: FeatureViewSpec, columns, lo,
                          hi) -> dict[str, pd.Series] | None:
    """A batch view's columns read straight from its partition files (`compute.daily_join`), where the offline
    store keeps it as such files and they fit that plan; else None (the DuckDB plan)."""
    partitions = runtime.offline.partition_files(spec, lo, hi)
    if partitions is None:
        return None
    schema = arrow_schema(spec, reading=True)
    wanted = {c.feature: schema.field(c.feature).type for c in columns}
    try:
        table = daily_join.join_partitions(keys, ts, partitions, spec.entity.join_key, spec.ttl, wanted)
    except daily_join.Unsupported as exc:
        log.debug("training set: %s read by DuckDB: %s", spec.name, exc)
        return None
    frame = daily_join.to_pandas(table)
    return {c.column: frame[c.feature] for c in columns}


def _spark_join(runtime: Runtime, entity_df: pd.DataFrame, columns, specs) -> pd.DataFrame:
    """The join in Spark (`compute.spark_point_in_time`) over each view's offline table."""
    if entity_df.empty:
        return pd.DataFrame({c.column: pd.Series([], dtype=object) for c in columns})
    from feature_platform.compute.spark_engine import ship_repository, spark_session
    from feature_platform.compute.spark_point_in_time import spark_point_in_time_join

    spark = spark_session(runtime.settings.spark_master)
    ship_repository(spark, runtime.repo)
    ts = entity_df[EVENT_TIMESTAMP]
    joins = _spark_view_joins(spark, runtime, columns, specs, ts.min(), ts.max(), {c.column: c.column for c in columns})
    return spark_point_in_time_join(spark, entity_df, joins)


def _spark_view_joins(spark, runtime: Runtime, columns, specs, lo: pd.Timestamp, hi: pd.Timestamp,
                      outputs: dict[str, str]) -> list:
    """One `SparkViewJoin` per view: its offline rows an entity time in `[lo, hi]` can see, and its
    columns' features under `outputs[column]`."""
    from feature_platform.compute.spark_point_in_time import SparkViewJoin, offline_frame

    joins = []
    for view, spec in specs.items():
        mine = [c for c in columns if c.view == view]
        table = offline_frame(spark, runtime.offline, spec, lo - pd.Timedelta(spec.ttl), hi)
        joins.append(SparkViewJoin(table=table, join_key=spec.entity.join_key, ttl=spec.ttl,
                                   features=tuple(c.feature for c in mine),
                                   outputs=tuple(outputs[c.column] for c in mine)))
    return joins


def spark_training_set(runtime: Runtime, entities, features, *, full_feature_names: bool = False,
                       persisted: list | None = None):
    """The training set of an entity set kept in Spark (a Parquet path or a Spark DataFrame), as a Spark
    DataFrame: the entity columns and rows in their order, then one column per feature (Spark types of
    the views' dtypes); the same join as `engine="spark"`, but the entity rows never reach the driver.
    The entity rows are persisted (their row ids must not change between uses); `persisted` collects
    them for the caller to unpersist once the result is written or collected."""
    from pyspark.sql import functions as F

    from feature_platform.compute import spark_entity_sets as sets
    from feature_platform.compute import spark_point_in_time as spit
    from feature_platform.compute.spark_engine import ship_repository, spark_session

    spark = spark_session(runtime.settings.spark_master)
    ship_repository(spark, runtime.repo)
    entities = sets.read_entity_set(spark, entities)
    plan = request_time.plan(runtime.repo, features, full_feature_names)
    if clash := request_time.column_clashes(plan.outputs, entities.columns, "the entity set"):
        raise sets.EntitySetError(clash)
    if plan.request_views:  # the stored inputs first, then the request views' function on the executors
        # A column of the caller named like an input (not an output) travels under another name meanwhile.
        request_fields = {f.name for f in plan.request_fields}
        aside = {c: f"__fp_entity_{i}" for i, c in enumerate(entities.columns)
                 if c in {r.replace(":", "__") for r in plan.stored} and c not in request_fields}
        for name, temporary in aside.items():
            entities = entities.withColumnRenamed(name, temporary)
        stored = spark_training_set(runtime, entities, list(plan.stored), full_feature_names=True,
                                    persisted=persisted)
        frame = with_request_features(runtime.repo, plan, stored, entities.columns)
        for name, temporary in aside.items():
            frame = frame.withColumnRenamed(temporary, name)
        return frame
    columns = resolve_features(runtime.repo, features, full_feature_names)
    specs = {c.view: runtime.repo.view(c.view) for c in columns}
    sets.check_entity_set(entities, list(specs.values()))
    rows = spit.spark_entities(entities)
    if persisted is not None:
        persisted.append(rows)
    lo_us, hi_us = rows.agg(F.min(spit._T), F.max(spit._T)).first()
    internal = {c.column: f"__fp_out{i}" for i, c in enumerate(columns)}  # entity columns may share a name
    joins = [] if lo_us is None else _spark_view_joins(
        spark, runtime, columns, specs, pd.Timestamp(lo_us, unit="us", tz="UTC"),
        pd.Timestamp(hi_us, unit="us", tz="UTC"), internal)
    joined = spit.join_features(rows, joins)
    features_out = {c.column: (F.col(internal[c.column]) if joins else F.lit(None)).cast(
        spark_type(specs[c.view].field(c.feature).dtype)).alias(c.column) for c in columns}
    # The entity columns untouched, then the features (a clash of names was refused above).
    return joined.orderBy(spit.ROW).select(*map(F.col, entities.columns), *features_out.values())


def with_request_features(repo, plan: request_time.FeaturePlan, stored, entity_columns: Sequence[str]):
    """`stored` (the entity columns plus the plan's stored inputs as `view__feature` columns) with the
    plan's output columns, request-time ones computed by `request_time.compute` on the executors from
    the same serving dtypes the pandas path hands it. Columns as `DataFrame.assign` would order them."""
    from pyspark.sql import types as T

    missing = [f.name for f in plan.request_fields if f.name not in entity_columns]
    if missing:  # checked on the driver, from the schema: the executors would fail row batch by row batch
        views = [v.name for v in plan.request_views if any(f.name in missing for f in v.request_fields)]
        raise RequestFeatureError(f"the entity set lacks request field(s) {missing} of request feature view(s) {views}")
    by_name = {f.name: f for f in stored.schema.fields}
    outputs = {o.column: T.StructField(o.column, spark_type(_request_dtype(plan, o)) if o.request
                                       else by_name[full_feature_name(o.view, o.feature)].dataType, True)
               for o in plan.outputs}
    schema = T.StructType([outputs.get(c, by_name[c]) for c in entity_columns]
                          + [field for c, field in outputs.items() if c not in entity_columns])
    kept = [c for c in entity_columns if c not in outputs]
    stored_dtypes = {ref.replace(":", "__"): _stored_dtype(repo, ref) for ref in plan.stored}
    names = schema.names

    def compute(batches):
        for batch in batches:
            inputs = pd.DataFrame({c: batch[c].astype(dtype) for c, dtype in stored_dtypes.items()}, index=batch.index)
            request = request_time.request_frame(plan, batch, "the entity set")
            values = request_time.assemble(plan, inputs, request)
            yield batch[kept].assign(**values)[names]

    return stored.mapInPandas(compute, schema)


def _request_dtype(plan: request_time.FeaturePlan, output: request_time.Output) -> str:
    spec = next(v for v in plan.request_views if v.name == output.view)
    return next(f.dtype for f in spec.features if f.name == output.feature)


def _stored_dtype(repo, ref: str) -> str:
    view, _, feature = ref.partition(":")
    return serving_dtype(repo.view(view).field(feature).dtype)


def _feast_join(runtime: Runtime, entity_df: pd.DataFrame, columns) -> pd.DataFrame:
    """Feast's get_historical_features, re-aligned to the entity rows (Feast may drop and reorder rows). It reads
    Feast's registry as it is: a read never applies it (`apply`, a materialization or a push does)."""
    registered = {view.name for view in runtime.feast.list_feature_views()}
    missing = sorted({c.view for c in columns} - registered)
    if missing:
        raise UnknownFeatureViewError(f"engine='feast' reads Feast's registry, which does not hold feature view(s) "
                                      f"{missing} yet: run `feature-platform apply` (or materialize them) first")
    keys = sorted({runtime.repo.view(c.view).entity.join_key for c in columns})
    frame = entity_df[[*keys, EVENT_TIMESTAMP]].copy()
    frame["__fp_row"] = range(len(frame))
    refs = [f"{c.view}:{c.feature}" for c in columns]
    result = runtime.feast.get_historical_features(entity_df=frame, features=refs, full_feature_names=True).to_df()
    result = result.set_index("__fp_row").reindex(range(len(frame)))
    return pd.DataFrame({c.column: result[f"{c.view}__{c.feature}"].to_numpy() for c in columns})


def label_frame(runtime: Runtime, spec: TrainingSetSpec) -> pd.DataFrame:
    """Run the training set's label function."""
    module, _, attr = spec.labels.partition(":")
    return getattr(importlib.import_module(module), attr)(runtime, **spec.label_params)


def training_set_path(settings, spec: TrainingSetSpec) -> Path:
    return settings.home / "training_sets" / spec.name / f"v{spec.version}.parquet"


def training_set_metadata(runtime: Runtime, spec: TrainingSetSpec, frame: pd.DataFrame) -> dict:
    """Row count, label balance, null rate per feature, and the versions/latest partitions of the views used."""
    columns = resolve_features(runtime.repo, spec.feature_service)
    views = {}
    for view in dict.fromkeys(c.view for c in columns):
        view_spec = runtime.repo.view(view)
        partitions = runtime.offline.partitions(view_spec)
        views[view] = {"version": view_spec.version, "latest_partition": partitions[-1].isoformat() if partitions else None}
        if view_spec.deprecated:
            views[view]["deprecated"] = view_spec.deprecated
    balance = frame[spec.label_column].value_counts(normalize=True, dropna=False).sort_index()
    return {
        "rows": len(frame),
        "label_balance": {str(k): round(float(v), 6) for k, v in balance.items()},
        "null_rate": {c.column: round(float(frame[c.column].isna().mean()), 6) if len(frame) else 0.0 for c in columns},
        "feature_views": views,
        "feature_service": spec.feature_service,
        "version": spec.version,
    }
