"""The example configurations of docs/scaling-out.md (deploy/scaling/) are valid for the pinned versions.

What is checked, and how far:
- dagster.k8s.yaml: a valid Dagster instance file (dagster's own instance schema); its run coordinator config
  is validated by QueuedRunCoordinator; the K8sRunLauncher config is validated by dagster-k8s only when that
  package is installed (it is not a dependency of the platform).
- celery.yaml: validated by dagster-celery's executor schema when installed; otherwise its shape.
- feast/*.yaml: loaded as Feast loads feature_store.yaml (environment variables expanded); registry and
  online store (Redis Cluster included) validated by Feast's RepoConfig; the offline store too when its
  Feast extra is importable, otherwise its keys are checked against the config class in Feast's installed
  source (parsed, not imported), so a misspelt or missing required option fails either way.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCALING = ROOT / "deploy" / "scaling"
FEAST_FILES = sorted((SCALING / "feast").glob("*.yaml"))
ENV = {"FEATURE_PLATFORM_PG_PASSWORD": "pg-secret", "FEATURE_PLATFORM_REDIS_PASSWORD": "redis-secret",
       "SNOWFLAKE_ACCOUNT": "acme-eu1", "SNOWFLAKE_USER": "fp", "SNOWFLAKE_PASSWORD": "sf-secret",
       "DAGSTER_CELERY_BROKER_URL": "pyamqp://guest@rabbitmq:5672//", "DAGSTER_CELERY_BACKEND_URL": "rpc://"}


def test_k8s_instance_file_is_a_valid_dagster_instance(tmp_path):
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator

    (tmp_path / "dagster.yaml").write_text((SCALING / "dagster.k8s.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert "postgres" in config["storage"] and config["telemetry"] == {"enabled": False}
    coordinator = process_config(resolve_to_config_type(QueuedRunCoordinator.config_type()),
                                 config["run_coordinator"]["config"])
    assert coordinator.success, coordinator.errors
    for ref in config["storage"]["postgres"]["postgres_db"].values():
        if isinstance(ref, dict):
            assert ref["env"].startswith("FEATURE_PLATFORM_")
    if importlib.util.find_spec("dagster_k8s"):
        from dagster_k8s import K8sRunLauncher

        launcher = process_config(resolve_to_config_type(K8sRunLauncher.config_type()),
                                  config["run_launcher"]["config"])
        assert launcher.success, launcher.errors


def test_celery_run_config(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    config = yaml.safe_load((SCALING / "celery.yaml").read_text())["execution"]["config"]
    assert {"broker", "backend", "include"} <= set(config)
    assert config["include"] == ["feature_platform.definitions"]
    if importlib.util.find_spec("dagster_celery"):
        from dagster import Shape
        from dagster._config import process_config, resolve_to_config_type
        from dagster_celery.executor import CELERY_CONFIG

        result = process_config(resolve_to_config_type(Shape(CELERY_CONFIG)), config)
        assert result.success, result.errors


def load_feast_yaml(path: Path, monkeypatch) -> dict:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return yaml.safe_load(os.path.expandvars(path.read_text()))  # what feast.repo_config.load_repo_config does


def config_fields(class_path: str) -> tuple[set[str], set[str]]:
    """(accepted keys, required keys) of a Feast config class, read from its source without importing it."""
    module, _, name = class_path.rpartition(".")
    source = Path(importlib.util.find_spec("feast").submodule_search_locations[0]).parent / (
        module.replace(".", "/") + ".py")
    cls = next(n for n in ast.parse(source.read_text()).body if isinstance(n, ast.ClassDef) and n.name == name)
    accepted, required = set(), set()
    for stmt in cls.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            key = stmt.target.id
            if isinstance(stmt.value, ast.Call):
                alias = next((k.value.value for k in stmt.value.keywords if k.arg == "alias"), None)
                key = alias or key
            accepted.add(key)
            if stmt.value is None:
                required.add(key)
    return accepted, required


@pytest.mark.parametrize("path", FEAST_FILES, ids=[p.stem for p in FEAST_FILES])
def test_feast_configuration(path, monkeypatch):
    from feast import RepoConfig
    from feast.errors import FeastExtrasDependencyImportError
    from feast.repo_config import OFFLINE_STORE_CLASS_FOR_TYPE

    raw = load_feast_yaml(path, monkeypatch)
    offline = raw.pop("offline_store")
    config = RepoConfig(**raw, offline_store={"type": "postgres", "host": "h", "port": 5432, "database": "d",
                                              "db_schema": "s", "user": "u", "password": ""})
    assert config.project == "feature_platform" and config.entity_key_serialization_version == 3
    assert config.online_store.type == "redis"
    assert config.registry.registry_type == "sql"

    store_class = OFFLINE_STORE_CLASS_FOR_TYPE[offline["type"]]
    config_class = store_class + "Config"
    module = config_class.rpartition(".")[0]
    try:
        importlib.import_module(module)
        importable = True
    except (ImportError, FeastExtrasDependencyImportError):  # the store's Feast extra is not installed here
        importable = False
    if importable:
        validated = RepoConfig(**raw, offline_store=offline).offline_store
        assert type(validated).__name__ == config_class.rpartition(".")[2]
    else:
        accepted, required = config_fields(config_class)
        assert set(offline) <= accepted, set(offline) - accepted
        assert required <= set(offline), required - set(offline)


def test_redis_cluster_online_store(monkeypatch):
    from feast import RepoConfig
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisType

    raw = load_feast_yaml(SCALING / "feast" / "redis-cluster.yaml", monkeypatch)
    config = RepoConfig(**raw)
    assert config.online_store.redis_type == RedisType.redis_cluster
    assert config.offline_store.type == "postgres" and config.offline_store.db_schema == "offline"
    nodes, params = RedisOnlineStore._parse_connection_string(config.online_store.connection_string)
    assert [n["host"] for n in nodes] == ["redis-0.internal", "redis-1.internal", "redis-2.internal"]
    assert params == {"password": "redis-secret", "ssl": True}
    assert "db" not in params  # a cluster has database 0 only


def test_every_example_is_described_in_the_guide():
    guide = (ROOT / "docs" / "scaling-out.md").read_text()
    for path in [SCALING / "dagster.k8s.yaml", SCALING / "celery.yaml", *FEAST_FILES]:
        assert str(path.relative_to(ROOT)) in guide, path
