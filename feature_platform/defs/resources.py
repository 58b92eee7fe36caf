"""The one resource assets need: the platform's stores, configured from the environment."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from feature_platform.config import Settings
from feature_platform.runtime import Runtime

_runtimes: dict[Settings, Runtime] = {}
# Credentials (a webhook URL is its own token): EnvVar references in the UI, never values, and not in repr.
SECRET_FIELDS = ("pg_password", "redis_password", "alert_webhook_url", "alert_slack_webhook_url")


class FeaturePlatformResource(dg.ConfigurableResource):
    """Offline/online stores and the raw source of one deployment (embedded or services profile)."""

    profile: str = "embedded"
    home: str = ".feature_platform"
    sessions_path: str | None = None
    partitions_start: str = "2025-01-01"
    demo_users: int = 2000
    demo_seed: int = 7
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_password: str = Field(default="", repr=False)  # a secret: not in repr
    pg_db: str = "feature_platform"
    dagster_pg_db: str = "dagster"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    redis_password: str = Field(default="", repr=False)  # a secret: not in repr
    redis_cluster_nodes: str = ""  # host:port seed nodes of a Redis Cluster; empty: the single Redis
    alert_webhook_url: str = Field(default="", repr=False)  # a secret: not in repr
    alert_slack_webhook_url: str = Field(default="", repr=False)  # a secret: not in repr
    engine: str = "pandas"  # the compute engine runs use (FEATURE_PLATFORM_ENGINE)
    spark_master: str = "local[2]"

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> FeaturePlatformResource:
        env = settings.as_env()
        values = {name: _field_value(name, env) for name in cls.model_fields}
        return cls(**{k: v for k, v in values.items() if v is not None} | overrides)

    def settings(self) -> Settings:
        env = {f"FEATURE_PLATFORM_{name.upper()}": str(value) for name, value in self.model_dump().items()
               if value is not None}
        return Settings.from_env(env)

    def runtime(self) -> Runtime:
        """Stores are cached per configuration, so one process opens each connection once."""
        settings = self.settings()
        if settings not in _runtimes:
            _runtimes[settings] = Runtime(settings)
        return _runtimes[settings]


def _field_value(name: str, env: dict[str, str]):
    value = env.get(f"FEATURE_PLATFORM_{name.upper()}")
    if value is not None and FeaturePlatformResource.model_fields[name].annotation is int:
        return int(value)
    return value


def platform_resource_from_env() -> FeaturePlatformResource:
    """The resource for this environment; secrets stay references to env vars (shown as such in the UI)."""
    secrets = {name: dg.EnvVar(f"FEATURE_PLATFORM_{name.upper()}") for name in SECRET_FIELDS
               if os.environ.get(f"FEATURE_PLATFORM_{name.upper()}")}
    return FeaturePlatformResource.from_settings(Settings.from_env(), **secrets)


def resources_for(settings: Settings, platform: FeaturePlatformResource | None = None) -> dict:
    """Every resource the definitions need, for one deployment."""
    from feature_platform.defs.io_managers import DatasetIOManager

    return {
        "platform": platform or FeaturePlatformResource.from_settings(settings),
        "dataset_io_manager": DatasetIOManager(home=str(settings.home)),
    }
