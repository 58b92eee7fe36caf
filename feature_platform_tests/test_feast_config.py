"""Stock Feast on the platform's registry (issue 21 item 6): the `feature_store.yaml` every apply writes into the
home lets `feast -c DIR` and `FeatureStore(repo_path=DIR)` read what the platform applied and materialized, on both
profiles, with each password a `${VARIABLE}` reference, never in clear."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import yaml
from feast import FeatureStore
from feast.repo_config import load_repo_config

from feature_platform.backends import repo_config
from feature_platform.backends.feast_yaml import (
    FeastConfigWarning,
    config_path,
    feature_store_yaml,
    unreadable_secrets,
    write_feature_store_yaml,
)
from feature_platform.config import Settings
from feature_platform.demo.generator import generate_day
from feature_platform.platform import FeaturePlatform
from feature_platform_tests.example_repo import all_specs
from feature_platform_tests.helpers import make_embedded_settings, write_sessions
from feature_platform_tests.test_cli_consistency import run_main

# Yesterday: Feast checks a value's TTL against the real clock, so the partition must be recent.
DAY = (datetime.now(timezone.utc) - timedelta(days=1)).date()
FEATURES = ["user_activity:sessions_7d", "user_activity:total_tokens_7d", "user_activity:preferred_model"]
FEAST = Path(sys.executable).parent / "feast"


@pytest.fixture
def materialized(profile_settings):
    """A platform of either profile with `user_activity` applied and materialized for DAY."""
    return _materialize(profile_settings)


def _materialize(settings: Settings) -> FeaturePlatform:
    settings = settings.with_(partitions_start=DAY - timedelta(days=10))
    write_sessions(settings.sessions_path, pd.concat([generate_day(DAY - timedelta(days=i), 40, seed=5)
                                                      for i in range(8)]))
    platform = FeaturePlatform(settings)
    platform.materialize("user_activity", DAY)
    return platform


def test_stock_feast_lists_and_reads_what_the_platform_applied(materialized):
    settings = materialized.settings
    path = config_path(settings)
    assert path.read_text() == feature_store_yaml(settings)  # written by the apply of the materialization

    listed = subprocess.run([str(FEAST), "-c", str(path.parent), "feature-views", "list"], capture_output=True,
                            text=True, timeout=300, env={**os.environ, **settings.as_env()})
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert {name for name, spec in all_specs().items() if not spec.deprecated} <= names

    users = materialized.offline_table("user_activity", DAY, DAY)["user_id"].head(5).tolist()
    assert users
    rows = [{"user_id": int(u)} for u in users]
    ours = materialized.online_features(FEATURES, rows, output="dict")
    theirs = FeatureStore(repo_path=str(path.parent)).get_online_features(FEATURES, rows).to_dict()
    assert theirs["user_id"] == users
    for column in ("sessions_7d", "total_tokens_7d", "preferred_model"):
        assert theirs[column] == ours[column], column
    assert all(v is not None for v in theirs["sessions_7d"])


def test_the_cli_prints_it_and_writes_it_with_dir(tmp_path, monkeypatch):
    settings = make_embedded_settings(tmp_path)
    for name, value in settings.as_env().items():
        monkeypatch.setenv(name, value)
    code, out, err = run_main(["feast-config"])
    assert code == 0, err
    assert out == feature_store_yaml(settings)
    assert yaml.safe_load(out)["registry"]["path"] == str(settings.feast_dir / "registry.db")
    assert not config_path(settings).exists()
    code, out, err = run_main(["feast-config", "--dir"])
    assert (code, out.strip()) == (0, str(settings.feast_dir))
    assert config_path(settings).read_text() == feature_store_yaml(settings)


SECRETS = {"pg_password": "pg s3cr'et: #1 \"x\" \\n", "redis_password": "rd-s3cret: 'q' #2"}


def services_with_secrets(**changes) -> Settings:
    return Settings.from_env({"FEATURE_PLATFORM_PROFILE": "services", "FEATURE_PLATFORM_HOME": "/nonexistent"}
                             ).with_(**{**SECRETS, **changes})


def test_passwords_are_references_that_feast_resolves_to_the_platforms_configuration(tmp_path, monkeypatch):
    settings = services_with_secrets()
    text = feature_store_yaml(settings)
    for secret in SECRETS.values():
        assert secret not in text
    assert "${FEATURE_PLATFORM_PG_PASSWORD}" in text and "${FEATURE_PLATFORM_REDIS_PASSWORD}" in text
    assert unreadable_secrets(settings, text) == []

    # Loaded the way Feast loads it, with the variables set: the platform's own configuration.
    (tmp_path / "feature_store.yaml").write_text(text)
    monkeypatch.setenv("FEATURE_PLATFORM_PG_PASSWORD", settings.pg_password)
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_PASSWORD", settings.redis_password)
    loaded = load_repo_config(tmp_path, tmp_path / "feature_store.yaml")
    ours = repo_config(settings)
    assert loaded.offline_store == ours.offline_store
    assert loaded.online_store.connection_string.split(",")[:2] == ours.online_store.connection_string.split(",")[:2]
    assert "password=" + settings.redis_password in loaded.online_store.connection_string
    assert loaded.registry.sqlalchemy_config_kwargs["connect_args"] == {"password": settings.pg_password}
    assert (loaded.project, loaded.entity_key_serialization_version) == (ours.project, 3)


def test_no_password_no_reference_and_a_cluster_keeps_its_nodes():
    settings = services_with_secrets(pg_password="", redis_password="")
    config = yaml.safe_load(feature_store_yaml(settings))
    assert "${" not in feature_store_yaml(settings) and config["offline_store"]["password"] == ""
    cluster = services_with_secrets(redis_cluster_nodes="10.0.0.1:7000,10.0.0.2:7000")
    online = yaml.safe_load(feature_store_yaml(cluster))["online_store"]
    assert online["redis_type"] == "redis_cluster"
    assert online["connection_string"] == "10.0.0.1:7000,10.0.0.2:7000,password=${FEATURE_PLATFORM_REDIS_PASSWORD}"


def test_a_password_feast_would_misread_is_warned_about_without_showing_it(tmp_path):
    settings = services_with_secrets(redis_password="a,b", home=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_feature_store_yaml(settings)
    messages = [str(w.message) for w in caught if issubclass(w.category, FeastConfigWarning)]
    assert len(messages) == 1 and "FEATURE_PLATFORM_REDIS_PASSWORD" in messages[0] and "a,b" not in messages[0]
    assert "a,b" not in config_path(settings).read_text()
