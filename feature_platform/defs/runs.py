"""The Python API's Dagster runs: the profile's instance, the deployment's assets (built once), and the runs
`FeaturePlatform` launches for day ranges, raw sources, pushed batches and training sets. Dagster is imported
only when a run or the instance is needed: reads never load it."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import yaml

from feature_platform.backends import dagster_instance_config
from feature_platform.config import Settings
from feature_platform.errors import MaterializationError
from feature_platform.runtime import Runtime
from feature_platform.spec import FeatureViewSpec
from feature_platform.util.parquet_files import read_frame

Progress = Callable[[int, int, str, str], None]  # (done, total, asset, partition)


class Runs:
    """The Dagster runs of one platform, recorded in its profile's instance."""

    def __init__(self, settings: Settings, runtime: Runtime):
        self.settings = settings
        self.runtime = runtime
        self._instance = None
        self._assets = None

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
        """The DAGSTER_HOME holding the instance (see `FeaturePlatform.dagster_home`)."""
        self.instance()
        return Path(os.environ.get("DAGSTER_HOME") or self.settings.dagster_home).resolve()

    def run(self, selection, partition_key: str | None, label: str, partition_range: tuple[str, str] | None = None,
            *, log_level: str) -> None:
        """One in-process Dagster run (defs/runner.py) on this platform's settings, hence its runtime."""
        from feature_platform.defs import runner

        if self._assets is None:  # built once per platform: the specs in code when it first runs
            self._assets = runner.assets_of(self.settings)
        runner.run(self.settings, self._assets, selection, instance=self.instance(), label=label,
                   partition_key=partition_key, partition_range=partition_range, log_level=log_level)

    def materialize(self, spec: FeatureViewSpec, first: date, last: date, progress: Progress | None, *,
                    log_level: str) -> list[str]:
        """The runs a Dagster backfill of days `first..last` of `spec` launches: ranges of up to
        `backfill_days_per_run` days, in day order; returns the partition keys."""
        import dagster as dg

        days = [d.isoformat() for d in pd.date_range(first, last, freq="D").date]
        per_run = self.settings.backfill_days_per_run
        for i in range(0, len(days), per_run):
            keys = days[i:i + per_run]
            self.run([dg.AssetKey(spec.name)], keys[0] if len(keys) == 1 else None, spec.name,
                     partition_range=(keys[0], keys[-1]) if len(keys) > 1 else None, log_level=log_level)
            if progress:
                progress(i + len(keys), len(days), spec.name, keys[-1])
        return days

    def observe_sources(self, specs: list[FeatureViewSpec]) -> pd.DataFrame:
        """Observe the raw sources `specs` read, recording per day present an observation in the instance (as
        the `observe_sources` sensor does); one row per source."""
        from feature_platform.defs.raw_sources import observation_events, observe_range

        repo = self.runtime.repo
        rows = []
        for name in sorted({s.aggregation.source for s in specs if s.aggregation is not None}):
            seen = observe_range(self.runtime, repo.source(name))
            for event in observation_events(repo.source(name), seen):
                self.instance().report_runless_asset_event(event)
            rows.append({"source": name, "days_present": len(seen.present), "rows": seen.rows,
                         "first_day": min(seen.present, default=None), "last_day": max(seen.present, default=None),
                         "newest_event": seen.newest})
        return pd.DataFrame(rows)

    def ingest_pending(self, spec: FeatureViewSpec, *, log_level: str) -> list:
        """One run per landed batch of `spec`'s push source, and one draining its direct log; returns the
        partition keys run."""
        import dagster as dg

        from feature_platform.defs.push_views import batch_partitions
        from feature_platform.ingest import DIRECT_PREFIX, transport_for

        pending = transport_for(self.runtime, spec).pending()
        logged = transport_for(self.runtime, spec, direct_log=True).pending()
        if logged:
            pending.append(f"{DIRECT_PREFIX}{logged[-1]}")
        if pending:
            self.instance().add_dynamic_partitions(batch_partitions(spec).name, pending)
        for batch_id in pending:
            self.run([dg.AssetKey(spec.name)], batch_id, spec.name, log_level=log_level)
        return pending

    def materialize_training_set(self, name: str, *, log_level: str) -> pd.DataFrame:
        """One run of training set `name`'s labels, then the set; returns the set."""
        import dagster as dg

        self.run([dg.AssetKey(f"{name}_labels"), dg.AssetKey(name)], None, name, log_level=log_level)
        return self.training_set(name)

    def training_set(self, name: str) -> pd.DataFrame:
        """The last materialized version of training set `name`."""
        from feature_platform.defs.io_managers import dataset_path

        path = dataset_path(self.settings, name)
        if not path.exists():
            raise MaterializationError(f"training set {name!r} has not been materialized yet ({path})")
        return read_frame(path)
