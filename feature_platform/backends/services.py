"""The services profile: PostgreSQL (offline tables, Feast's SQL registry and its history, Dagster's storage) and
Redis (the online store, push streams, watermarks), a single Redis or a Redis Cluster."""

from __future__ import annotations

import json

from feature_platform.config import FEAST_PROJECT, OFFLINE_SCHEMA, PG_CONNECT_TIMEOUT_SEC, Settings, env_reference
from feature_platform.feast_format.redis_features import RedisFeatures
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.online import RedisWatermarks, read_redis_columns, redis_client


def connection_string_value(value: str) -> str:
    """`value` as an option value of Feast's Redis connection string, which splits options on ',' and then
    json-decodes each value: a JSON string with every character but ASCII letters and digits \\u-escaped
    comes back exactly (commas, quotes, spaces, `true`, `null`, `1e3`), and is one token that redact's
    `password=` pattern masks whole."""
    return '"' + "".join(c if c.isascii() and c.isalnum() else json.dumps(c)[1:-1] if ord(c) > 0xFFFF
                         else f"\\u{ord(c):04x}" for c in value) + '"'


class ServicesBackends:
    offline_kind = "postgres"
    online_kind = "redis"
    executor_online_writes = True  # Spark's executors write their partitions themselves (backends/spark_sync.py)

    def __init__(self, settings: Settings):
        self.settings = settings

    def offline_store(self):
        from feature_platform.stores.offline_postgres import PostgresOfflineStore

        return PostgresOfflineStore(self.settings)

    def repo_config(self):
        from feast import RepoConfig
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import PostgreSQLOfflineStoreConfig
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig, RedisType
        from feast.infra.registry.sql import SqlRegistryConfig

        s = self.settings
        password = f",password={connection_string_value(s.redis_password)}" if s.redis_password else ""
        if s.redis_cluster_nodes:  # seed nodes, then options; a cluster has no `db`
            redis = {"redis_type": RedisType.redis_cluster, "connection_string": f"{s.redis_cluster_nodes}{password}"}
        else:
            redis = {"connection_string": f"{s.redis_host}:{s.redis_port},db={s.redis_db}{password}"}
        return RepoConfig(
            project=FEAST_PROJECT,
            provider="local",
            registry=SqlRegistryConfig(path=s.pg_sqlalchemy_url(), cache_ttl_seconds=60),
            # Newest-wins is enforced by the platform (ties rewrite, so a re-run replaces a partition).
            online_store=RedisOnlineStoreConfig(**redis, skip_dedup=True),
            offline_store=PostgreSQLOfflineStoreConfig(
                host=s.pg_host, port=s.pg_port, database=s.pg_db, db_schema=OFFLINE_SCHEMA,
                user=s.pg_user, password=s.pg_password, sslmode="disable",
            ),
            entity_key_serialization_version=3,
        )

    def feast_yaml(self) -> dict:
        s = self.settings
        redis_password = f",password={env_reference('redis_password')}" if s.redis_password else ""
        if s.redis_cluster_nodes:
            redis = {"redis_type": "redis_cluster", "connection_string": f"{s.redis_cluster_nodes}{redis_password}"}
        else:
            redis = {"connection_string": f"{s.redis_host}:{s.redis_port},db={s.redis_db}{redis_password}"}
        # The registry's URL without the password (a URL would need it percent-encoded, which a reference cannot
        # be): SQLAlchemy hands `connect_args` to psycopg, which adds it to the URL's other parameters.
        registry = {"registry_type": "sql", "path": s.with_(pg_password="").pg_sqlalchemy_url(), "cache_ttl_seconds": 60}
        if s.pg_password:
            registry["sqlalchemy_config_kwargs"] = {"echo": False,
                                                    "connect_args": {"password": env_reference("pg_password")}}
        return {
            "project": FEAST_PROJECT,
            "provider": "local",
            "registry": registry,
            "online_store": {"type": "redis", **redis, "skip_dedup": True},
            "offline_store": {"type": "postgres", "host": s.pg_host, "port": s.pg_port, "database": s.pg_db,
                              "db_schema": OFFLINE_SCHEMA, "user": s.pg_user,
                              "password": env_reference("pg_password") if s.pg_password else "",
                              "sslmode": "disable"},
            "entity_key_serialization_version": 3,
        }

    def feature_store(self):
        from feast import FeatureStore

        from feature_platform.stores.postgres import ensure_database

        ensure_database(self.settings, self.settings.pg_db)  # the SQL registry lives there
        return FeatureStore(config=self.repo_config())

    def online_features(self, store) -> RedisOnlineFeatures:
        return RedisOnlineFeatures(self.settings, store.config.project)

    def watermarks(self, features: RedisOnlineFeatures | None = None) -> RedisWatermarks:
        if features is None:
            return RedisWatermarks(redis_client(self.settings), redis_client(self.settings, reads=True))
        return RedisWatermarks(features.client, features.reads)

    def registry_log(self):
        from feature_platform.stores.registry_history import PostgresRegistryLog

        return PostgresRegistryLog(self.settings)

    def push_transport(self, source: str):
        from feature_platform.stores.redis_stream import RedisStreamTransport

        return RedisStreamTransport(self.settings, source)

    def direct_log(self, source: str):
        return self.push_transport(f"{source}.direct")

    def batch_source(self, spec: FeatureViewSpec, **common):
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

        return PostgreSQLSource(table=f"{OFFLINE_SCHEMA}.{spec.name}", **common)

    def prepare_dagster_storage(self) -> None:
        from feature_platform.stores.postgres import ensure_database

        ensure_database(self.settings, self.settings.dagster_pg_db)

    def dagster_storage(self, resolved: bool) -> dict:
        s = self.settings
        db = {
            "hostname": {"env": "FEATURE_PLATFORM_PG_HOST"},
            "port": {"env": "FEATURE_PLATFORM_PG_PORT"},
            "username": {"env": "FEATURE_PLATFORM_PG_USER"},
            "password": {"env": "FEATURE_PLATFORM_PG_PASSWORD"},
            "db_name": {"env": "FEATURE_PLATFORM_DAGSTER_PG_DB"},
        }
        if resolved:
            db = {
                "hostname": s.pg_host,
                "port": s.pg_port,
                "username": s.pg_user,
                "password": db["password"] if s.pg_password else "",
                "db_name": s.dagster_pg_db,
                # libpq would wait forever on a server that accepts TCP and never answers
                "params": {"connect_timeout": PG_CONNECT_TIMEOUT_SEC},
            }
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; dagster-postgres needs psycopg2.
        return {"storage": {"postgres": {"postgres_db": {**db, "scheme": "postgresql+psycopg2"}}}}


class RedisOnlineFeatures(RedisFeatures):
    """Redis in Feast's format: writes with the write budget's client, reads (all views in one round trip) with
    the read budget's."""

    def __init__(self, settings: Settings, project: str):
        super().__init__(redis_client(settings), project, reads=redis_client(settings, reads=True))
        self.settings = settings

    def read_columns(self, spec_by_view, columns, entity_rows, groups=None) -> dict:
        return read_redis_columns(self, spec_by_view, columns, entity_rows, groups)

    def ping(self) -> None:
        self.reads.ping()  # the read client: fails within the read budget
