"""The deployment's backends, chosen in one place.

`build_backends(settings)` is the only code that asks which profile the platform runs on: it returns the
embedded bundle (Parquet offline tables, Feast's SQLite online store, landing directories, SQLite registry
history, a file Feast registry) or the services bundle (PostgreSQL, Redis, Redis Streams, a SQL Feast registry).
Everything else is handed a `Backends` and uses what it builds, so adding a profile means adding one module
beside `embedded.py` and `services.py` and one case below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from feast import FeatureStore, RepoConfig
    from feast.data_source import DataSource

    from feature_platform.config import Settings
    from feature_platform.spec import FeatureViewSpec
    from feature_platform.stores.offline import OfflineStore
    from feature_platform.stores.online import OnlineFeatures, Watermarks
    from feature_platform.stores.registry_history import RegistryLog


class Backends(Protocol):
    """What one profile provides. Building it connects to nothing; each method builds one backend."""

    settings: Settings
    offline_kind: str  # shown as the assets' kinds in the Dagster UI
    online_kind: str
    executor_online_writes: bool  # whether a distributed engine's workers may write the online store themselves

    def offline_store(self) -> OfflineStore: ...

    def repo_config(self) -> RepoConfig:
        """Feast's configuration of this profile (in code: no credential is written to disk for Feast)."""

    def feast_yaml(self) -> dict:
        """The same configuration as a `feature_store.yaml` document for stock Feast (`feast -c DIR`), each
        password a `${VARIABLE}` reference to its FEATURE_PLATFORM_* variable (see feast_yaml.py)."""

    def feature_store(self) -> FeatureStore:
        """Feast's FeatureStore, its registry's storage created if needed."""

    def online_features(self, store: FeatureStore) -> OnlineFeatures:
        """The online store's newest-wins writer and one-call reader, in Feast's storage format."""

    def watermarks(self, features: OnlineFeatures | None = None) -> Watermarks:
        """The newest feature timestamp written online per view, kept beside the values."""

    def registry_log(self) -> RegistryLog: ...

    def push_transport(self, source: str):
        """Where batches pushed to `source` wait to be ingested (a landing directory or a Redis Stream)."""

    def direct_log(self, source: str):
        """The direct log of `source` (what `push(..., direct=True)` logs for the offline store): a table in the
        SQLite online file, or a Redis Stream `<source>.direct`."""

    def batch_source(self, spec: FeatureViewSpec, **common) -> DataSource:
        """The view's offline table as a Feast batch source."""

    def prepare_dagster_storage(self) -> None:
        """Create what Dagster's instance storage needs before it opens (e.g. its database)."""

    def dagster_storage(self, resolved: bool) -> dict:
        """The `storage:` of this profile's dagster.yaml (see `dagster_instance_config`)."""


def build_backends(settings: Settings) -> Backends:
    """The backends of `settings.profile`: the one place a profile is chosen."""
    match settings.profile:
        case "services":
            from feature_platform.backends.services import ServicesBackends

            return ServicesBackends(settings)
        case "embedded":
            from feature_platform.backends.embedded import EmbeddedBackends

            return EmbeddedBackends(settings)
    from feature_platform.errors import ConfigurationError

    raise ConfigurationError(f"FEATURE_PLATFORM_PROFILE must be 'embedded' or 'services', not {settings.profile!r}")


def dagster_instance_config(settings: Settings, resolved: bool = False) -> dict:
    """The dagster.yaml of a profile. The repo's dagster.yaml files are checked against this.

    With `resolved`, connection settings are written as values rather than `{env: ...}` references
    (the password stays a reference when set), for an instance this process creates itself.
    """
    from feature_platform.compat.dagster_internals import RUN_COORDINATOR_MODULE

    return {
        **build_backends(settings).dagster_storage(resolved),
        "run_coordinator": {
            "module": RUN_COORDINATOR_MODULE,
            "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": 2},
        },
        # Dagster's default launcher, plus a check of each run's worker process (defs/run_workers.py): run
        # monitoring (the daemon) marks a run whose worker was killed as failed, so it stops holding one of
        # `max_concurrent_runs` for ever.
        "run_launcher": {"module": "feature_platform.defs.run_workers", "class": "WorkerCheckingRunLauncher"},
        "run_monitoring": {
            "enabled": True,
            "poll_interval_seconds": 30,
            "start_timeout_seconds": 600,  # a run worker loads the code location first, slow on a busy machine
            "max_resume_run_attempts": 0,  # the default launcher cannot resume a run: it is marked failed
        },
        "telemetry": {"enabled": False},
        "freshness": {"enabled": True},
        # Declarative automation (defs/automation.py), evaluated by the daemon through automation sensors.
        "auto_materialize": {"enabled": True, "use_sensors": True},
    }


# Shorthands for callers that need one backend of a deployment.
def offline_store(settings: Settings) -> OfflineStore:
    return build_backends(settings).offline_store()


def repo_config(settings: Settings) -> RepoConfig:
    return build_backends(settings).repo_config()


def feature_store(settings: Settings) -> FeatureStore:
    return build_backends(settings).feature_store()


def registry_log(settings: Settings) -> RegistryLog:
    return build_backends(settings).registry_log()


def watermarks(settings: Settings) -> Watermarks:
    return build_backends(settings).watermarks()
