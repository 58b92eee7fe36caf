"""The backend bundle: one place chooses a profile's backends, and building them connects to nothing."""

from __future__ import annotations

import dataclasses

import pytest
from chat_activity.user_activity import SPEC

from feature_platform.backends import build_backends
from feature_platform.config import Settings
from feature_platform.errors import ConfigurationError
from feature_platform_tests.helpers import make_embedded_settings


def test_embedded_backends_are_local_files(tmp_path):
    settings = make_embedded_settings(tmp_path)
    backends = build_backends(settings)
    assert (backends.offline_kind, backends.online_kind, backends.executor_online_writes) == ("parquet", "sqlite", False)
    assert type(backends.offline_store()).__name__ == "ParquetOfflineStore"
    assert type(backends.registry_log()).__name__ == "SqliteRegistryLog"
    transport = backends.push_transport("events")
    assert type(transport).__name__ == "LandingDirectory" and transport.root == settings.home / "push" / "events"
    config = backends.repo_config()
    assert config.online_store.path == str(settings.feast_dir / "online.db")
    assert backends.batch_source(SPEC, name="x", timestamp_field="event_timestamp").path == str(
        settings.offline_dir / SPEC.name)


def test_services_backends_build_without_connecting(tmp_path):
    """Nothing listens on port 1: building the bundle and Feast's configuration must not try to connect (the
    stores connect when first used, with their own bounded timeouts)."""
    settings = Settings.from_env({"FEATURE_PLATFORM_PROFILE": "services", "FEATURE_PLATFORM_HOME": str(tmp_path),
                                  "FEATURE_PLATFORM_PG_PORT": "1", "FEATURE_PLATFORM_REDIS_PORT": "1"})
    backends = build_backends(settings)
    assert (backends.offline_kind, backends.online_kind, backends.executor_online_writes) == ("postgres", "redis", True)
    config = backends.repo_config()
    assert config.online_store.connection_string.startswith("127.0.0.1:1,db=")
    assert backends.batch_source(SPEC, name="x", timestamp_field="event_timestamp").get_table_query_string() \
        == f"offline.{SPEC.name}"
    assert type(backends.offline_store()).__name__ == "PostgresOfflineStore"


def test_an_unknown_profile_is_a_configuration_error(tmp_path):
    settings = make_embedded_settings(tmp_path)
    with pytest.raises(ConfigurationError, match="FEATURE_PLATFORM_PROFILE"):
        dataclasses.replace(settings, profile="cloud")  # refused when settings are built
    object.__setattr__(settings, "profile", "cloud")  # and by the bundle, should one get past that
    with pytest.raises(ConfigurationError, match="FEATURE_PLATFORM_PROFILE"):
        build_backends(settings)
