"""The Feast FeatureStore of a profile, configured in code from Settings (no feature_store.yaml needed, so
no credential is ever written to disk for Feast)."""

from __future__ import annotations

import json

from feast import FeatureStore, RepoConfig
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import PostgreSQLOfflineStoreConfig
from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig, RedisType
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.infra.registry.sql import SqlRegistryConfig
from feast.repo_config import RegistryConfig

from feature_platform.config import FEAST_PROJECT, OFFLINE_SCHEMA, Settings


def connection_string_value(value: str) -> str:
    """`value` as an option value of Feast's Redis connection string, which splits options on ',' and then
    json-decodes each value: a JSON string with every character but ASCII letters and digits \\u-escaped
    comes back exactly (commas, quotes, spaces, `true`, `null`, `1e3`), and is one token that redact's
    `password=` pattern masks whole."""
    return '"' + "".join(c if c.isascii() and c.isalnum() else json.dumps(c)[1:-1] if ord(c) > 0xFFFF
                         else f"\\u{ord(c):04x}" for c in value) + '"'


def repo_config(settings: Settings) -> RepoConfig:
    if settings.profile == "services":
        password = f",password={connection_string_value(settings.redis_password)}" if settings.redis_password else ""
        if settings.redis_cluster_nodes:  # seed nodes, then options; a cluster has no `db`
            redis = {"redis_type": RedisType.redis_cluster,
                     "connection_string": f"{settings.redis_cluster_nodes}{password}"}
        else:
            redis = {"connection_string": f"{settings.redis_host}:{settings.redis_port},db={settings.redis_db}{password}"}
        return RepoConfig(
            project=FEAST_PROJECT,
            provider="local",
            registry=SqlRegistryConfig(path=settings.pg_sqlalchemy_url(), cache_ttl_seconds=60),
            # Newest-wins is enforced by the platform (ties rewrite, so a re-run replaces a partition).
            online_store=RedisOnlineStoreConfig(**redis, skip_dedup=True),
            offline_store=PostgreSQLOfflineStoreConfig(
                host=settings.pg_host, port=settings.pg_port, database=settings.pg_db, db_schema=OFFLINE_SCHEMA,
                user=settings.pg_user, password=settings.pg_password, sslmode="disable",
            ),
            entity_key_serialization_version=3,
        )
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return RepoConfig(
        project=FEAST_PROJECT,
        provider="local",
        registry=RegistryConfig(registry_type="file", path=str(settings.feast_dir / "registry.db"), cache_ttl_seconds=60),
        online_store=SqliteOnlineStoreConfig(path=str(settings.feast_dir / "online.db")),
        offline_store=DaskOfflineStoreConfig(),
        entity_key_serialization_version=3,
        repo_path=str(settings.feast_dir),
    )


def feature_store(settings: Settings) -> FeatureStore:
    return FeatureStore(config=repo_config(settings))

