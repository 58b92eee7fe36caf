"""`FeaturePlatform`: the stable Python entry point. Thin: it checks arguments (arguments.py), then delegates: runs to
defs/runs.py (Dagster), online reads to online_reads.py, training sets to training.py, pushes to ingest.py."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from feature_platform import arguments, freshness, training
from feature_platform.config import Settings
from feature_platform.defs.runs import Progress, Runs
from feature_platform.online_reads import OnlineReads
from feature_platform.runtime import runtime_for
from feature_platform.spec import FeatureViewSpec
from feature_platform.versioning import workflow


class FeaturePlatform:
    """Feature views declared once, materialized by Dagster, served offline and online."""

    # Runs log to the Dagster event log (the UI); the console logger only repeats warnings and errors (a
    # failed run's error is also raised). The CLI raises it to CRITICAL: it prints that error on one line.
    console_log_level = "WARNING"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.runtime = runtime_for(settings)  # the one its Dagster runs use too
        self._runs = Runs(settings, self.runtime)
        self._online = OnlineReads(self.runtime)

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
        return arguments.view_spec(self.runtime.repo, name)

    def apply(self, *, user: str | None = None):
        """Apply the specs in code to the registry, as `plan()` shows them; returns that plan.

        Raises `BreakingChangeError` (and applies nothing) when a registered view would change in a
        breaking way in place: a breaking change needs a new version, declared beside the old one.
        """
        arguments.check_user(user)
        return workflow.apply(self.runtime, user=user)

    def plan(self):
        """Compare the specs in code with the registry: per view the changes, each additive or breaking, and
        a migration plan for new versions and refused changes (`.render()` prints it). Read-only."""
        return workflow.plan(self.runtime)

    def remove(self, view: str, *, user: str | None = None) -> dict:
        """Delete a feature view no longer declared in code from the registry and the online store.

        Refused (`ViewInUseError`) while a spec declares it or a feature service or training set reads it;
        its offline table is kept."""
        arguments.check_registered_view(view)
        arguments.check_user(user)
        return workflow.remove(self.runtime, view, user=user)

    def resolve_version(self, family: str, version: int) -> str:
        """The name of version `version` of `family`, in code or in the registry."""
        return workflow.resolve_version(self.runtime, family, arguments.version_number(family, version))

    def history(self, view: str | None = None) -> pd.DataFrame:
        """The registry's change history (time, object, version, action, classification, user, diff), oldest
        first; `view` filters by view, family or feature service name."""
        arguments.check_history_filter(view)
        return workflow.history(self.runtime, view)

    # --- materialization ----------------------------------------------------------------------
    def materialize(self, view: str, start: str | date, end: str | date | None = None, *,
                    progress: Progress | None = None) -> list[str]:
        """Materialize partitions `start..end` (inclusive days) of `view` through Dagster.

        The runs are those a Dagster backfill of the range launches: ranges of up to
        FEATURE_PLATFORM_BACKFILL_DAYS_PER_RUN days (the view's `BackfillPolicy`), in day order, each
        computed in one pass a chunk of days at a time, so memory is bounded however long the range.
        Raises `ValidationFailedError`, `SourceDataError` (raw data that does not match its schema;
        `MissingSourceDaysError` when a window reads raw days the source does not hold),
        `AggregationOverflowError` or `MaterializationError` on the first failing partition (the days before it
        stay written offline and online and are recorded, unless the online write failed: then none are);
        returns the partition keys.
        """
        spec = arguments.daily_view_spec(self.runtime.repo, view, "not by daily partitions: use push() / ingest_pending()")
        arguments.check_progress(progress)
        first, last = arguments.day_range(self.settings, start, end)
        return self._runs.materialize(spec, first, last, progress, log_level=self.console_log_level)

    def observe_sources(self, view: str | None = None) -> pd.DataFrame:
        """Observe the raw sources (the one `view` reads, default: every source a view reads) as the `observe_sources`
        sensor does, recording per day present its rows and data version in Dagster; one row per source: days
        present, first and last day, rows, newest event time."""
        specs = [arguments.daily_view_spec(self.runtime.repo, view, "not by a raw source")] if view is not None \
            else list(self.runtime.repo.views.values())
        return self._runs.observe_sources(specs)

    def push(self, source: str, batch: pd.DataFrame | list[dict], *, direct: bool = False):
        """Push a batch of events (a DataFrame, or a list of row dicts) to push source `source`.

        By default the batch lands in the source's transport and the view's Dagster sensor turns it
        into a run; returns the batch id. With `direct`, it is validated and written online and
        offline in this call (the low-latency path) and an `IngestResult` is returned. Bad rows go to
        the dead-letter with a reason either way.
        """
        from feature_platform import ingest  # it imports pandera: only where pushes are
        spec = arguments.push_view_spec(self.runtime.repo, source)
        arguments.check_batch(batch)
        return ingest.push(self.runtime, spec, batch, direct=direct)

    def ingest_pending(self, source: str) -> list:
        """Process every landed batch of `source`, and drain its direct log, now, through Dagster runs
        (what the sensor does); returns the partition keys run."""
        return self._runs.ingest_pending(arguments.push_view_spec(self.runtime.repo, source),
                                         log_level=self.console_log_level)

    def freshness(self, now: datetime | None = None) -> pd.DataFrame:
        """Per view: latest partition, newest feature timestamp offline and online, age, SLA and status
        (fresh / warn / stale / missing), measured from the data."""
        arguments.check_now(now)
        return freshness.freshness_table(self.runtime, now)

    def materialize_training_set(self, name: str) -> pd.DataFrame:
        """Materialize a declared training set (its labels, then the set) through Dagster; returns it."""
        arguments.check_training_set(self.runtime.repo, name)
        return self._runs.materialize_training_set(name, log_level=self.console_log_level)

    def load_training_asset(self, name: str) -> pd.DataFrame:
        """The last materialized version of training set `name`."""
        arguments.check_training_set(self.runtime.repo, name)
        return self._runs.training_set(name)

    def instance(self):
        """The Dagster instance of this profile (DAGSTER_HOME when set, else under FEATURE_PLATFORM_HOME)."""
        return self._runs.instance()

    def dagster_home(self) -> Path:
        """The DAGSTER_HOME holding this profile's instance, where its runs and partitions are recorded: the one
        `dagster dev` must use to show them (DAGSTER_HOME when set, else `$FEATURE_PLATFORM_HOME/dagster`, whose
        dagster.yaml `instance()` writes)."""
        return self._runs.dagster_home()

    # --- reads --------------------------------------------------------------------------------
    def offline_table(self, view: str, start: str | date | None = None, end: str | date | None = None) -> pd.DataFrame:
        """The offline rows of partitions `start..end` (inclusive; default: all)."""
        return self.runtime.offline.read(arguments.view_spec(self.runtime.repo, view),
                                         *arguments.optional_day_range(start, end))

    def online_features(self, features, entity_rows: Sequence[dict], *, with_metadata: bool = False,
                        full_feature_names: bool = False, now: datetime | None = None,
                        output: str = "pandas") -> pd.DataFrame | dict[str, list]:
        """Online feature vectors, one row per entity row, with the same columns and dtypes as `training_set`.

        `features` is a list of `view:feature` references or a feature service name. Values older
        than their view's TTL are returned as missing; with `with_metadata`, each feature column
        also gets `<column>__status` (present / missing / expired) and `<column>__event_timestamp`.
        `output="dict"` returns `{column: list}` of plain Python values instead (timestamps as ns since
        the epoch): no DataFrame is built, for callers on a latency budget.
        """
        arguments.check_online_read(features, entity_rows, now=now, output=output)
        return self._online.read(features, entity_rows, with_metadata=with_metadata,
                                 full_feature_names=full_feature_names, now=now, output=output)

    def training_set(self, entity_df, features, *, full_feature_names: bool = False, output: str = "pandas",
                     path: str | os.PathLike | None = None, engine: str = "duckdb"):
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
        arguments.check_features(features)
        training.warn_deprecated_views(self.runtime, features)
        arguments.check_training_output(output, engine, path)
        return training.training_set_as(self.runtime, entity_df, features, full_feature_names=full_feature_names,
                                        output=output, path=path, engine=engine)
