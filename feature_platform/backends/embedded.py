"""The embedded profile: everything in local files under FEATURE_PLATFORM_HOME, no server needed.

Offline tables are Parquet, the online store is Feast's SQLite file (written by `SqliteFeatures`, read through
Feast), pushed batches land in directories, the registry is Feast's file registry with its history in SQLite.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from feature_platform.config import FEAST_PROJECT, Settings
from feature_platform.feast_format.sqlite_features import SqliteFeatures
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.online import SQLITE_READ_CHUNK, SqliteWatermarks, read_through_feast


class EmbeddedBackends:
    offline_kind = "parquet"
    online_kind = "sqlite"
    executor_online_writes = False  # one local file: Spark executors on other machines cannot reach it

    def __init__(self, settings: Settings):
        self.settings = settings

    def offline_store(self):
        from feature_platform.stores.offline_parquet import ParquetOfflineStore

        return ParquetOfflineStore(self.settings.offline_dir)

    def repo_config(self):
        from feast import RepoConfig
        from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
        from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
        from feast.repo_config import RegistryConfig

        feast_dir = self.settings.feast_dir
        feast_dir.mkdir(parents=True, exist_ok=True)
        return RepoConfig(
            project=FEAST_PROJECT,
            provider="local",
            registry=RegistryConfig(registry_type="file", path=str(feast_dir / "registry.db"), cache_ttl_seconds=60),
            online_store=SqliteOnlineStoreConfig(path=str(feast_dir / "online.db")),
            offline_store=DaskOfflineStoreConfig(),
            entity_key_serialization_version=3,
            repo_path=str(feast_dir),
        )

    def feast_yaml(self) -> dict:
        feast_dir = self.settings.feast_dir
        return {
            "project": FEAST_PROJECT,
            "provider": "local",
            "registry": {"registry_type": "file", "path": str(feast_dir / "registry.db"), "cache_ttl_seconds": 60},
            "online_store": {"type": "sqlite", "path": str(feast_dir / "online.db")},
            "offline_store": {"type": "dask"},
            "entity_key_serialization_version": 3,
        }

    def feature_store(self):
        from feast import FeatureStore

        return FeatureStore(config=self.repo_config())

    def online_features(self, store) -> SqliteOnlineFeatures:
        return SqliteOnlineFeatures(store, self.settings.online_read_timeout_sec)

    def watermarks(self, features=None) -> SqliteWatermarks:
        return SqliteWatermarks(self.settings.feast_dir / "online.db")

    def registry_log(self):
        from feature_platform.stores.registry_history import SqliteRegistryLog

        return SqliteRegistryLog(self.settings)

    def push_transport(self, source: str):
        from feature_platform.stores.landing import LandingDirectory

        return LandingDirectory(self.settings.home, source)

    def direct_log(self, source: str):
        from feature_platform.stores.sqlite_log import SqliteDirectLog

        return SqliteDirectLog(self.settings.home, f"{source}.direct", self.settings.feast_dir / "online.db")

    def batch_source(self, spec: FeatureViewSpec, **common):
        from feast import FileSource

        return FileSource(path=str(self.settings.offline_dir / spec.name), **common)

    def prepare_dagster_storage(self) -> None:
        """Dagster's SQLite storage creates itself."""

    def dagster_storage(self, resolved: bool) -> dict:
        # Resolved, the path is absolute: `dagster dev` with this DAGSTER_HOME finds it from any directory.
        # Dagster's SQLite storage, its event log keeping its connections and storing an event (or a batch) in one
        # transaction per shard (compat/dagster_sqlite.py: a range run stores four events per partition, each
        # otherwise a new connection, up to three commits and a WAL checkpoint).
        from feature_platform.compat.dagster_sqlite import STORAGE_CLASS, STORAGE_MODULE

        storage = self.settings.dagster_home / "storage"
        return {"storage": {"custom": {"module": STORAGE_MODULE, "class": STORAGE_CLASS,
                                       "config": {"base_dir": str(storage.resolve() if resolved else storage)}}}}


class SqliteOnlineFeatures(SqliteFeatures):
    """Feast's SQLite online file: the platform's newest-wins writer, reads through Feast (in chunks of rows:
    Feast binds one SQL variable per entity, and SQLite limits them)."""

    def __init__(self, store, read_timeout_sec: float):
        super().__init__(Path(store.config.online_store.path), store.config.project)
        self.store = store
        self.read_timeout_sec = read_timeout_sec

    def read_columns(self, spec_by_view, columns, entity_rows, groups=None) -> dict:
        # Feast sees the join keys only: other fields of a row (request data) are not its to convert.
        keys = {spec.entity.join_key for spec in spec_by_view.values()}
        return read_through_feast(self.store, columns, [{k: r[k] for k in keys} for r in entity_rows],
                                  SQLITE_READ_CHUNK)

    def ping(self) -> None:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.read_timeout_sec) as conn:
            conn.execute("SELECT 1").fetchone()
