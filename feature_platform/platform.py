"""`FeaturePlatform`: the stable Python entry point. Thin: materialization runs through Dagster,
reads go to the stores."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from feature_platform import request_time, training
from feature_platform.backends import dagster_instance_config
from feature_platform.compute import spark_entity_sets, spark_point_in_time
from feature_platform.config import Settings
from feature_platform.dtypes import is_key_value as _valid_key
from feature_platform.errors import (
    InvalidArgumentError,
    InvalidDateError,
    InvalidEntityError,
    MaterializationError,
    UnknownFeatureError,
    UnknownFeatureViewError,
)
from feature_platform.errors import shorten as _short
from feature_platform.features import resolve_features
from feature_platform.runtime import runtime_for
from feature_platform.spec import NAME as _NAME  # every declared name matches it: others are unknown without a lookup
from feature_platform.spec import FeatureViewSpec
from feature_platform.versioning.deprecation import warn_deprecated

Progress = Callable[[int, int, str, str], None]  # (done, total, asset, partition)


class FeaturePlatform:
    """Feature views declared once, materialized by Dagster, served offline and online."""

    # Runs log to the Dagster event log (the UI); the console logger only repeats warnings and errors (a
    # failed run's error is also raised). The CLI raises it to CRITICAL: it prints that error on one line.
    console_log_level = "WARNING"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.runtime = runtime_for(settings)  # the one its Dagster runs use too
        self._instance = None
        self._assets = None

    @classmethod
    def from_env(cls) -> FeaturePlatform:
        """The profile and stores named by the FEATURE_PLATFORM_* environment (embedded by default)."""
        return cls(Settings.from_env())

    def __repr__(self) -> str:
        return f"FeaturePlatform(profile={self.settings.profile!r}, home={str(self.settings.home)!r})"

    # --- catalogue --------------------------------------------------------------------------
    @property
    def views(self) -> dict[str, FeatureViewSpec]:
        return dict(self.runtime.repo.views)

    def view(self, name: str) -> FeatureViewSpec:
        return _spec(self.runtime.repo, name)

    def apply(self, *, user: str | None = None):
        """Apply the specs in code to the registry, as `plan()` shows them; returns that plan.

        Raises `BreakingChangeError` (and applies nothing) when a registered view would change in a
        breaking way in place: a breaking change needs a new version, declared beside the old one.
        """
        from feature_platform.versioning import workflow

        _check_user(user)
        return workflow.apply(self.runtime, user=user)

    def plan(self):
        """Compare the specs in code with the registry: per view the changes, each additive or breaking, and
        a migration plan for new versions and refused changes (`.render()` prints it). Read-only."""
        from feature_platform.versioning import workflow

        return workflow.plan(self.runtime)

    def remove(self, view: str, *, user: str | None = None) -> dict:
        """Delete a feature view no longer declared in code from the registry and the online store.

        Refused (`ViewInUseError`) while a spec declares it or a feature service or training set reads it;
        its offline table is kept."""
        from feature_platform.versioning import workflow

        if not isinstance(view, str):
            raise TypeError(f"a feature view name must be a string, not {type(view).__name__}")
        if not _NAME.fullmatch(view):
            raise UnknownFeatureViewError(f"feature view {_short(view)} is not in the registry (view names are "
                                          "snake_case identifiers)")
        _check_user(user)
        return workflow.remove(self.runtime, view, user=user)

    def resolve_version(self, family: str, version: int) -> str:
        """The name of version `version` of `family`, in code or in the registry."""
        from feature_platform.versioning import workflow

        if not (isinstance(family, str) and _NAME.fullmatch(family)):
            raise UnknownFeatureViewError(f"{_short(family)} is not a view family name (snake_case identifiers)")
        if isinstance(version, bool) or not isinstance(version, (int, np.integer)):
            raise InvalidArgumentError(f"version must be an integer, not {_short(version)}")
        return workflow.resolve_version(self.runtime, family, int(version))

    def history(self, view: str | None = None) -> pd.DataFrame:
        """The registry's change history (time, object, version, action, classification, user, diff), oldest
        first; `view` filters by view, family or feature service name."""
        from feature_platform.versioning import workflow

        if view is not None and not (isinstance(view, str) and _NAME.fullmatch(view)):
            raise UnknownFeatureViewError(f"{_short(view)} is not a view, family or feature service name "
                                          "(snake_case identifiers)")
        return workflow.history(self.runtime, view)

    # --- materialization ----------------------------------------------------------------------
    def materialize(
        self, view: str, start: str | date, end: str | date | None = None, *,
        progress: Progress | None = None,
    ) -> list[str]:
        """Materialize partitions `start..end` (inclusive days) of `view` through Dagster.

        The runs are those a Dagster backfill of the range launches: ranges of up to
        FEATURE_PLATFORM_BACKFILL_DAYS_PER_RUN days (the view's `BackfillPolicy`), in day order, each
        computed in one pass a chunk of days at a time, so memory is bounded however long the range.
        Raises `ValidationFailedError`, `SourceDataError` (raw data that does not match its schema),
        `AggregationOverflowError` or `MaterializationError` on the first failing partition (the days before it
        stay written offline and online and are recorded, unless the online write failed: then none are);
        returns the partition keys.
        """
        import dagster as dg

        spec = _spec(self.runtime.repo, view)
        if spec.aggregation is None:
            raise InvalidDateError(f"feature view {view!r} is fed by push source {spec.push_source!r}, "
                                   "not by daily partitions: use push() / ingest_pending()")
        _check_progress(progress)
        first, last = self._day_range(start, end)
        days = [d.isoformat() for d in pd.date_range(first, last, freq="D").date]

        per_run = self.settings.backfill_days_per_run
        for i in range(0, len(days), per_run):
            keys = days[i:i + per_run]
            self._run([dg.AssetKey(spec.name)], keys[0] if len(keys) == 1 else None, view,
                      partition_range=(keys[0], keys[-1]) if len(keys) > 1 else None)
            if progress:
                progress(i + len(keys), len(days), view, keys[-1])
        return days

    def observe_sources(self, view: str | None = None) -> pd.DataFrame:
        """Observe the declared raw sources (the one `view` reads, default: every source a view reads) as the
        `observe_sources` sensor does, and record in Dagster, per day present, its rows and data version.
        Returns one row per source: days present, first and last day, rows, newest event time."""
        from feature_platform.defs.raw_sources import observation_events, observe_range

        repo = self.runtime.repo
        views = [_spec(repo, view)] if view is not None else list(repo.views.values())
        names = sorted({v.aggregation.source for v in views if v.aggregation is not None})
        if view is not None and not names:
            raise InvalidDateError(f"feature view {view!r} is fed by push source {views[0].push_source!r}, "
                                   "not by a raw source")
        rows = []
        for name in names:
            seen = observe_range(self.runtime, repo.source(name))
            instance = self.instance()
            for event in observation_events(repo.source(name), seen):
                instance.report_runless_asset_event(event)
            rows.append({"source": name, "days_present": len(seen.present), "rows": seen.rows,
                         "first_day": min(seen.present, default=None), "last_day": max(seen.present, default=None),
                         "newest_event": seen.newest})
        return pd.DataFrame(rows)

    def push(self, source: str, batch: pd.DataFrame, *, direct: bool = False):
        """Push a batch of events to push source `source`.

        By default the batch lands in the source's transport and the view's Dagster sensor turns it
        into a run; returns the batch id. With `direct`, it is validated and written online and
        offline in this call (the low-latency path) and an `IngestResult` is returned. Bad rows go to
        the dead-letter with a reason either way.
        """
        from feature_platform.ingest import push_direct, transport_for
        from feature_platform.push import check_columns, transportable
        from feature_platform.stores.unavailable import store_errors

        spec = self._push_view(source)
        if not isinstance(batch, pd.DataFrame):
            raise TypeError(f"push expects a pandas DataFrame, not {type(batch).__name__}")
        batch = check_columns(spec, batch)  # text names: the dead-letter and the transports need them
        with store_errors(self.settings, f"pushing to {source!r}"):  # the transports' Redis, too
            if direct:
                return push_direct(self.runtime, spec, batch)
            return transport_for(self.runtime, spec).write(transportable(batch))

    def ingest_pending(self, source: str) -> list:
        """Process every landed batch of `source`, and drain its direct log, now, through Dagster runs
        (what the sensor does); returns the partition keys run."""
        import dagster as dg

        from feature_platform.defs.push_views import batch_partitions
        from feature_platform.ingest import DIRECT_PREFIX, transport_for

        spec = self._push_view(source)
        pending = transport_for(self.runtime, spec).pending()
        logged = transport_for(self.runtime, spec, direct_log=True).pending()
        if logged:
            pending.append(f"{DIRECT_PREFIX}{logged[-1]}")
        if pending:
            self.instance().add_dynamic_partitions(batch_partitions(spec).name, pending)
        for batch_id in pending:
            self._run([dg.AssetKey(spec.name)], batch_id, spec.name)
        return pending

    def _push_view(self, source: str) -> FeatureViewSpec:
        views = [s for s in self.runtime.repo.views.values() if s.push_source == source]
        if not views:
            known = sorted(s.push_source for s in self.runtime.repo.views.values() if s.push_source)
            raise UnknownFeatureViewError(f"unknown push source {_short(source)}; known: {', '.join(known) or 'none'}")
        return views[0]

    def freshness(self, now: datetime | None = None) -> pd.DataFrame:
        """Per view: latest partition, newest feature timestamp offline and online, age, SLA and status
        (fresh / warn / stale / missing), measured from the data."""
        from feature_platform.freshness import view_freshness

        if now is not None and not isinstance(now, datetime):
            raise TypeError(f"now must be a datetime, not {type(now).__name__}")
        rows = [view_freshness(self.runtime, spec, now).as_dict() for spec in self.runtime.repo.views.values()]
        return pd.DataFrame(rows)

    def materialize_training_set(self, name: str) -> pd.DataFrame:
        """Materialize a declared training set (its labels, then the set) through Dagster; returns it."""
        import dagster as dg

        _training_set_name(self.runtime.repo, name)
        self._run([dg.AssetKey(f"{name}_labels"), dg.AssetKey(name)], None, name)
        return self.load_training_asset(name)

    def load_training_asset(self, name: str) -> pd.DataFrame:
        """The last materialized version of training set `name`."""
        from feature_platform.defs.io_managers import dataset_path

        _training_set_name(self.runtime.repo, name)
        path = dataset_path(self.settings, name)
        if not path.exists():
            raise MaterializationError(f"training set {name!r} has not been materialized yet ({path})")
        return pd.read_parquet(path)

    def _run(self, selection, partition_key: str | None, label: str, partition_range: tuple[str, str] | None = None) -> None:
        """One in-process Dagster run (defs/runner.py) on this platform's settings, hence its runtime."""
        from feature_platform.defs import runner

        if self._assets is None:  # built once per platform: the specs in code when it first runs
            self._assets = runner.assets_of(self.settings)
        runner.run(self.settings, self._assets, selection, instance=self.instance(), label=label, partition_key=partition_key,
                   partition_range=partition_range, log_level=self.console_log_level)

    def instance(self):
        """The Dagster instance of this profile (DAGSTER_HOME when set, else under FEATURE_PLATFORM_HOME)."""
        if self._instance is None:
            from dagster import DagsterInstance

            if os.environ.get("DAGSTER_HOME"):
                self._instance = DagsterInstance.get()
            else:
                from feature_platform.util.locks import exclusive

                home = self.settings.dagster_home
                home.mkdir(parents=True, exist_ok=True)
                config = dagster_instance_config(self.settings, resolved=True)
                self.runtime.backends.prepare_dagster_storage()
                # Processes opening a fresh home at once would both create Dagster's SQLite tables ("table
                # snapshots already exists"): the first one creates them while the others wait on this lock.
                with exclusive(home / ".instance.lock"):
                    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
                    self._instance = DagsterInstance.from_config(str(home))
        return self._instance

    def dagster_home(self) -> Path:
        """The DAGSTER_HOME holding this profile's instance, where its runs and partitions are recorded: the one
        `dagster dev` must use to show them (DAGSTER_HOME when set, else `$FEATURE_PLATFORM_HOME/dagster`, whose
        dagster.yaml `instance()` writes)."""
        self.instance()
        return Path(os.environ.get("DAGSTER_HOME") or self.settings.dagster_home).resolve()

    # --- reads --------------------------------------------------------------------------------
    def offline_table(self, view: str, start: str | date | None = None, end: str | date | None = None) -> pd.DataFrame:
        """The offline rows of partitions `start..end` (inclusive; default: all)."""
        spec = _spec(self.runtime.repo, view)
        first = _parse_day(start, "start") if start is not None else None
        last = _parse_day(end, "end") if end is not None else None
        if first and last and first > last:
            raise InvalidDateError(f"start {first} is after end {last}")
        return self.runtime.offline.read(spec, first, last)

    def online_features(
        self, features, entity_rows: Sequence[dict], *, with_metadata: bool = False,
        full_feature_names: bool = False, now: datetime | None = None, output: str = "pandas",
    ) -> pd.DataFrame | dict[str, list]:
        """Online feature vectors, one row per entity row, with the same columns and dtypes as `training_set`.

        `features` is a list of `view:feature` references or a feature service name. Values older
        than their view's TTL are returned as missing; with `with_metadata`, each feature column
        also gets `<column>__status` (present / missing / expired) and `<column>__event_timestamp`.
        `output="dict"` returns `{column: list}` of plain Python values instead (timestamps as ns since
        the epoch): no DataFrame is built, for callers on a latency budget.
        """
        if output not in ("pandas", "dict"):
            raise InvalidArgumentError(f"output must be 'pandas' or 'dict', not {_short(output)}")
        if now is not None and not isinstance(now, datetime):
            raise TypeError(f"now must be a datetime, not {type(now).__name__}")
        _check_features(features)
        _check_entity_rows(entity_rows)
        plan = request_time.plan(features, full_feature_names) if self._has_request_features(features) else None
        if plan is not None:
            return request_time.online(self, plan, entity_rows, with_metadata=with_metadata, now=now, output=output)
        columns, specs = self._resolved(features, full_feature_names)
        warn_deprecated(specs.values())
        rows = [dict(r) for r in entity_rows]
        for spec in specs.values():
            key = spec.entity.join_key
            for i, row in enumerate(rows):
                if key not in row:
                    raise UnknownFeatureError(
                        f"entity row {i} lacks join key {key!r} of view {spec.name!r}: {_short(row)}")
                if not _valid_key(spec.entity.dtype, row[key]):
                    # Before any store sees it: a float or bool would be truncated into another entity's
                    # key, a value outside int64 would wrap around.
                    raise InvalidEntityError(
                        f"entity row {i}: join key {key!r} of view {spec.name!r} must be "
                        f"{'an integer in the int64 range' if spec.entity.dtype == 'int64' else 'a string'}, "
                        f"not {_short(row[key])} ({type(row[key]).__name__})")
        if output == "dict":
            return self.runtime.online.read_lists(specs, columns, rows, now=now, with_metadata=with_metadata)
        frame = self.runtime.online.read(specs, columns, rows, now=now)
        if not with_metadata:
            frame = frame.drop(columns=[c for c in frame.columns if c.endswith(("__status", "__event_timestamp"))])
        return frame

    def _has_request_features(self, features) -> bool:
        """Whether `features` names any request-time feature (cached: serving asks per request)."""
        key = features if isinstance(features, str) else tuple(features)
        cache = self.__dict__.setdefault("_request_feature_lists", {})
        try:
            return cache[key]
        except KeyError:
            cache[key] = bool(request_time.plan(self.runtime.repo, features, True).request_views)
            return cache[key]
        except TypeError:  # unhashable items: plan() rejects them with a clear error
            return bool(request_time.plan(self.runtime.repo, features, True).request_views)

    def _resolved(self, features, full_feature_names: bool):
        """Resolved columns and specs of a feature list, cached: serving resolves the same list per request."""
        key = (features if isinstance(features, str) else tuple(features), full_feature_names)
        cache = self.__dict__.setdefault("_resolved_features", {})
        if key not in cache:
            columns = resolve_features(self.runtime.repo, features, full_feature_names)
            cache[key] = (columns, {c.view: self.runtime.repo.view(c.view) for c in columns})
        return cache[key]

    def training_set(
        self, entity_df, features, *, full_feature_names: bool = False,
        output: str = "pandas", path: str | os.PathLike | None = None, engine: str = "duckdb",
    ):
        """Point-in-time correct features for `entity_df` (keys + tz-aware `event_timestamp` + labels).

        For each row and view: the latest feature value whose feature timestamp lies in
        `[event_timestamp - ttl, event_timestamp]`, else null. Rows, order and extra columns of
        `entity_df` are kept. `features`: `view:feature` references or a feature service name.
        `output`: "pandas" (default) or "arrow"; with `path`, the set is written there as Parquet
        and the path returned. `engine="feast"` uses Feast's get_historical_features (the reference);
        `engine="spark"` runs the same join in Spark (docs/scaling-out.md).

        `entity_df` may also be a Parquet path or, with `engine="spark"`, a Spark DataFrame. With
        `engine="spark"` such an entity set stays in Spark: with `path`, Spark writes the set there as a
        directory of Parquet files (in the entity rows' order; what was at `path` is replaced only once
        the write succeeded) and nothing but the schema reaches this process; `output="spark"` returns
        the Spark DataFrame.
        """
        _check_features(features)
        stored = request_time.plan(self.runtime.repo, features, True).stored
        warn_deprecated(self.runtime.repo.view(view) for view in dict.fromkeys(ref.partition(":")[0] for ref in stored))
        if output not in ("pandas", "arrow", "spark"):
            raise InvalidArgumentError(f"output must be 'pandas', 'arrow' or 'spark', not {_short(output)}")
        if engine not in ("duckdb", "spark", "feast"):
            raise InvalidArgumentError(f"engine must be 'duckdb', 'spark' or 'feast', not {_short(engine)}")
        _check_output_path(path)
        in_spark = not isinstance(entity_df, pd.DataFrame) and (
            isinstance(entity_df, (str, os.PathLike)) or spark_entity_sets.is_spark_frame(entity_df))
        if engine == "spark" and (in_spark or output == "spark"):
            persisted: list = []  # a returned Spark DataFrame keeps them (released when Spark collects it)
            frame = training.spark_training_set(self.runtime, entity_df, features,
                                                full_feature_names=full_feature_names, persisted=persisted)
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
        frame = training.training_set(self.runtime, entity_df, features,
                                      full_feature_names=full_feature_names, engine=engine)
        if path is not None:
            try:
                frame.to_parquet(path, index=False)
            except OSError as exc:  # e.g. a directory there, no permission, the disk full
                raise InvalidArgumentError(f"path {_short(os.fspath(path), PATH_LIMIT)}: the training set cannot be "
                                           f"written there ({_os_reason(exc)})") from None
            return Path(path)
        if output == "arrow":
            import pyarrow as pa

            return pa.Table.from_pandas(frame, preserve_index=False)
        return frame

    # --- helpers ------------------------------------------------------------------------------
    def _day_range(self, start, end, clamp: bool = True) -> tuple[date, date]:
        first = _parse_day(start, "start")
        last = _parse_day(end, "end") if end is not None else first
        if first > last:
            raise InvalidDateError(f"start {first} is after end {last}")
        if clamp and first < self.settings.partitions_start:
            raise InvalidDateError(
                f"start {first} is before the first partition {self.settings.partitions_start} "
                "(FEATURE_PLATFORM_PARTITIONS_START)"
            )
        if clamp and last >= date.today():
            raise InvalidDateError(f"end {last} is not a complete UTC day yet (the last partition is yesterday)")
        return first, last


def _parse_day(value, name: str) -> date:
    if value is pd.NaT:
        raise InvalidDateError(f"{name} date is NaT; pass an ISO day like 2026-01-31")
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):  # str(20260131) would parse as a day
        raise InvalidDateError(f"{name} date must be an ISO day string like 2026-01-31 or a date, "
                               f"not {type(value).__name__}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidDateError(f"{name} date {_short(value)} is not an ISO day like 2026-01-31") from None


PATH_LIMIT = 300  # characters of a path a message quotes: real ones whole, a hostile one cut


def _check_user(user) -> None:
    if user is not None and not isinstance(user, str):
        raise TypeError(f"user must be a string, not {type(user).__name__}")


def _check_progress(progress) -> None:
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable (done, total, asset, partition), not {type(progress).__name__}")


def _training_set_name(repo, name) -> None:
    known = repo.training_sets
    if not (isinstance(name, str) and name in known):
        raise UnknownFeatureViewError(f"unknown training set {_short(name)}; known: {', '.join(known) or 'none'}")


def _check_output_path(path) -> None:
    """A local `path` to write a training set to must be in an existing directory: checked before any work
    (a URL such as s3://... is left to its writer)."""
    if path is None:
        return
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str) or "://" in text:
        return
    try:
        parent_exists = bool(text) and Path(text).expanduser().absolute().parent.is_dir()
    except (OSError, ValueError):  # a name too long, a NUL byte
        parent_exists = False
    if not parent_exists:
        raise InvalidArgumentError(f"path {_short(text, PATH_LIMIT)}: its directory does not exist (or the path is not "
                                   "valid); create the directory first")


def _os_reason(exc: OSError) -> str:
    """What went wrong, without the path (the message names it once, cut): 'Is a directory'."""
    return os.strerror(exc.errno) if exc.errno else _short(str(exc), 200, quote=False)


def _read_entity_parquet(path) -> pd.DataFrame:
    from feature_platform.training import EntityFrameError

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # missing, a directory of something else, not Parquet
        reason = _os_reason(exc) if isinstance(exc, OSError) else _short(str(exc), 200, quote=False)
        raise EntityFrameError(f"entity_df {_short(os.fspath(path), PATH_LIMIT)} cannot be read as Parquet: "
                               f"{reason}") from None


def _spec(repo, name) -> FeatureViewSpec:
    if not isinstance(name, str):
        raise TypeError(f"a feature view name must be a string, not {type(name).__name__}")
    if not _NAME.fullmatch(name):
        raise UnknownFeatureViewError(f"unknown feature view {_short(name)}: view names are snake_case "
                                      f"identifiers (known views: {', '.join(sorted(repo.views))})")
    return repo.view(name)


def _check_features(features) -> None:
    """A feature service name or a list of 'view:feature' strings whose names could have been declared."""
    if isinstance(features, str):
        if not _NAME.fullmatch(features):
            raise UnknownFeatureError(f"{_short(features)} is not a feature service; pass a list of "
                                      "'view:feature' references or a service name")
        return
    if not isinstance(features, (list, tuple)):
        raise TypeError(f"features must be a list of 'view:feature' strings or a feature service name, "
                        f"not {type(features).__name__}")
    for ref in features:
        if not isinstance(ref, str):
            raise UnknownFeatureError(f"feature reference {_short(ref)} must be a 'view:feature' string")
        view, sep, feature = ref.partition(":")
        if sep and not _NAME.fullmatch(view):
            raise UnknownFeatureViewError(f"unknown feature view {_short(view)} in {_short(ref)}: view names "
                                          "are snake_case identifiers")
        if sep and not _NAME.fullmatch(feature):
            raise UnknownFeatureError(f"feature view {view!r} has no feature {_short(feature)}: feature names "
                                      "are snake_case identifiers")


def _check_entity_rows(entity_rows) -> None:
    if isinstance(entity_rows, (str, bytes, Mapping, pd.DataFrame)) or not isinstance(entity_rows, Sequence):
        raise TypeError(f"entity_rows must be a list of dicts, not {type(entity_rows).__name__}")
    for i, row in enumerate(entity_rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"entity row {i} must be a dict, not {type(row).__name__}")
