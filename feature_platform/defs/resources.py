"""The one resource assets need: the deployment's `Settings`, every field of it, and the runtime built from them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from datetime import date
from pathlib import Path

import dagster as dg
from pydantic import Field

from feature_platform.config import Settings, env_name
from feature_platform.runtime import Runtime, runtime_for

# Credentials (a webhook URL is its own token): EnvVar references in the UI, never values, and not in repr.
SECRET_FIELDS = ("pg_password", "redis_password", "alert_webhook_url", "alert_slack_webhook_url")


class FeaturePlatformResource(dg.ConfigurableResource):
    """`Settings` as a Dagster resource: one field per field of `Settings`, as Dagster's config types
    (paths and days as text). `settings()` gives the very settings it was made from, so the asset body and
    the caller share one `Runtime` (`runtime_for`)."""

    profile: str
    home: str
    sessions_path: str
    partitions_start: str  # an ISO day
    demo_users: int
    demo_seed: int
    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str = Field(repr=False)  # a secret: not in repr
    pg_db: str
    dagster_pg_db: str
    redis_host: str
    redis_port: int
    redis_db: int
    redis_password: str = Field(repr=False)  # a secret: not in repr
    redis_cluster_nodes: str
    alert_webhook_url: str = Field(repr=False)  # a secret: not in repr
    alert_slack_webhook_url: str = Field(repr=False)  # a secret: not in repr
    backfill_days_per_run: int
    compute_ahead: bool
    serving_tokens_file: str
    serving_max_body_bytes: int
    serving_max_entities: int
    online_read_timeout_sec: float
    online_write_timeout_sec: float
    engine: str
    spark_master: str
    executor: str
    executor_config: str
    repo: str

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str] | None = None) -> FeaturePlatformResource:
        """The resource of `settings`. A secret the environment holds with the same value becomes an `EnvVar`
        reference (resolved where the run executes; what Dagster stores and shows is the name); a secret of
        explicit settings that the environment does not hold is carried as it is (in-process runs only)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(Settings):
            value = getattr(settings, f.name)
            if f.name in SECRET_FIELDS and value and environ.get(env_name(f.name)) == value:
                values[f.name] = dg.EnvVar(env_name(f.name))
            else:
                values[f.name] = value.isoformat() if isinstance(value, date) else (
                    str(value) if isinstance(value, Path) else value)
        return cls(**values)

    def settings(self) -> Settings:
        """The settings this resource was made from (no environment read, no field dropped)."""
        values = {f.name: getattr(self, f.name) for f in fields(Settings)}
        for name in SECRET_FIELDS:  # resolved in a run; outside one (a test, a script) still the reference
            if isinstance(values[name], dg.EnvVar):
                values[name] = values[name].get_value() or ""
        return Settings(**values | {"home": Path(self.home), "sessions_path": Path(self.sessions_path),
                                    "partitions_start": date.fromisoformat(self.partitions_start)})

    def runtime(self) -> Runtime:
        """The process's runtime of these settings: the caller's own when it runs Dagster in process."""
        return runtime_for(self.settings())


# Every field of Settings, and nothing else: the resource cannot drift from the model.
if set(FeaturePlatformResource.model_fields) != {f.name for f in fields(Settings)}:
    raise AssertionError("FeaturePlatformResource and the fields of Settings differ")


def resources_for(settings: Settings) -> dict:
    """Every resource the definitions need, for one deployment."""
    from feature_platform.defs.io_managers import DatasetIOManager

    return {
        "platform": FeaturePlatformResource.from_settings(settings),
        "dataset_io_manager": DatasetIOManager(home=str(settings.home), repo=settings.repo),
    }
