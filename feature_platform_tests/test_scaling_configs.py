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

import dagster as dg
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
    from dagster_k8s import K8sRunLauncher  # a dev dependency: validated in every test run

    launcher = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), config["run_launcher"]["config"])
    assert launcher.success, launcher.errors
    broken = {**config["run_launcher"]["config"], "job_namespce": "typo"}  # the check can fail
    assert not process_config(resolve_to_config_type(K8sRunLauncher.config_type()), broken).success


def test_celery_run_config(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    config = yaml.safe_load((SCALING / "celery.yaml").read_text())["execution"]["config"]
    assert {"broker", "backend", "include"} <= set(config)
    assert config["include"] == ["feature_platform.definitions"]
    from dagster import Shape
    from dagster._config import process_config, resolve_to_config_type
    from dagster_celery.executor import CELERY_CONFIG

    result = process_config(resolve_to_config_type(Shape(CELERY_CONFIG)), config)
    assert result.success, result.errors


EXECUTOR_FILES = {"in_process": None, "multiprocess": None, "celery": SCALING / "celery.yaml",
                  "k8s": SCALING / "k8s_executor.yaml"}


def _view_job(settings):
    from feature_platform.definitions import build_definitions

    defs = build_definitions(settings)
    return defs.resolve_implicit_job_def_def_for_assets([dg.AssetKey("user_activity")])


@pytest.mark.parametrize("name", list(EXECUTOR_FILES))
def test_every_executor_setting_loads_the_definitions_with_its_config(name, embedded_settings, monkeypatch):
    """FEATURE_PLATFORM_EXECUTOR (+ _CONFIG, the guide's file) gives the definitions that executor, and Dagster
    accepts the file's config for it (the run config a launched run would be validated against)."""
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = EXECUTOR_FILES[name]
    settings = embedded_settings.with_(executor=name, executor_config=str(path) if path else "")
    job = _view_job(settings)
    expected = {"k8s": "k8s"}.get(name, name)
    assert job.executor_def.name == expected
    validated = dg.validate_run_config(job, {})["execution"]  # what a launched run's executor gets
    if path is not None:  # the file's values, its {env: NAME} references resolved
        def resolved(value):
            if isinstance(value, dict):
                return ENV[value["env"]] if set(value) == {"env"} else {k: resolved(v) for k, v in value.items()}
            return value

        def assert_within(want, got, where):  # every value of the file is there (Dagster adds defaults)
            if isinstance(want, dict):
                for key, value in want.items():
                    assert key in got, f"{where}.{key}"
                    assert_within(value, got[key], f"{where}.{key}")
            else:
                assert got == want, where

        config = validated.get(expected, validated.get("config"))
        assert_within(resolved(yaml.safe_load(path.read_text())["execution"]["config"]), config, name)


def test_a_wrong_executor_setting_is_refused(embedded_settings, tmp_path, monkeypatch):
    from feature_platform.config import Settings
    from feature_platform.errors import FeaturePlatformError

    with pytest.raises(ValueError, match="FEATURE_PLATFORM_EXECUTOR must be one of in_process, multiprocess, celery, k8s"):
        Settings.from_env({"FEATURE_PLATFORM_EXECUTOR": "dask"})
    (tmp_path / "none.yaml").write_text("executor: {}\n")
    with pytest.raises(FeaturePlatformError, match="no `execution: config:` mapping"):
        _view_job(embedded_settings.with_(executor="k8s", executor_config=str(tmp_path / "none.yaml")))
    (tmp_path / "typo.yaml").write_text("execution:\n  config:\n    job_namespce: feature-platform\n")
    with pytest.raises(FeaturePlatformError, match="not a valid config of the k8s executor: .*job_namespce"):
        _view_job(embedded_settings.with_(executor="k8s", executor_config=str(tmp_path / "typo.yaml")))
    monkeypatch.delenv("DAGSTER_CELERY_BROKER_URL", raising=False)  # an {env: ...} the deployment did not set
    with pytest.raises(FeaturePlatformError, match="DAGSTER_CELERY_BROKER_URL"):
        _view_job(embedded_settings.with_(executor="celery", executor_config=str(SCALING / "celery.yaml")))


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
    from feast.infra.online_stores.redis import RedisType

    from feature_platform_tests.feast_format.stock_feast import parse_redis_connection_string

    raw = load_feast_yaml(SCALING / "feast" / "redis-cluster.yaml", monkeypatch)
    config = RepoConfig(**raw)
    assert config.online_store.redis_type == RedisType.redis_cluster
    assert config.offline_store.type == "postgres" and config.offline_store.db_schema == "offline"
    nodes, params = parse_redis_connection_string(config.online_store.connection_string)
    assert [n["host"] for n in nodes] == ["redis-0.internal", "redis-1.internal", "redis-2.internal"]
    assert params == {"password": "redis-secret", "ssl": True}
    assert "db" not in params  # a cluster has database 0 only


def test_every_example_is_described_in_the_guide():
    guide = (ROOT / "docs" / "scaling-out.md").read_text()
    for path in [SCALING / "dagster.k8s.yaml", SCALING / "celery.yaml", *FEAST_FILES]:
        assert str(path.relative_to(ROOT)) in guide, path


def _dockerfile_install(extras: str, tmp_path: Path) -> list[str]:
    """What the Dockerfile's install step runs for build argument EXTRAS, from its own shell text
    (apt-get, pip and rm recorded by stand-ins on PATH instead of run; Docker is not available here)."""
    import re
    import subprocess

    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    assert re.search(r'^ARG EXTRAS=""$', text, re.M), "the Dockerfile declares build argument EXTRAS"
    step = next(line[4:] for line in text.splitlines() if line.startswith("RUN ") and "pip install" in line)
    bin_dir = tmp_path / f"bin-{extras or 'none'}"
    bin_dir.mkdir()
    for tool in ("apt-get", "pip", "rm"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*"\n')
        (bin_dir / tool).chmod(0o755)
    done = subprocess.run(["/bin/sh", "-c", step], env={"EXTRAS": extras, "PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True, check=True)
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


def test_the_image_holds_spark_and_java_only_when_built_for_the_spark_engine(tmp_path):
    default = _dockerfile_install("", tmp_path)
    assert default == ["pip install --no-cache-dir -c requirements.lock ."]
    spark = _dockerfile_install("spark", tmp_path)
    assert "apt-get install -y --no-install-recommends openjdk-17-jre-headless" in spark
    assert spark[-1] == "pip install --no-cache-dir -c requirements.lock .[spark]"
    both = _dockerfile_install("k8s,spark", tmp_path)
    assert "apt-get install -y --no-install-recommends openjdk-17-jre-headless" in both
    assert both[-1] == "pip install --no-cache-dir -c requirements.lock .[k8s,spark]"
    assert _dockerfile_install("k8s", tmp_path) == ["pip install --no-cache-dir -c requirements.lock .[k8s]"]
    # compose passes the build argument from .env, next to the engine setting it enables
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["x-platform"]["build"] == {"context": ".", "args": {"EXTRAS": "${FEATURE_PLATFORM_IMAGE_EXTRAS:-}"}}
    assert compose["x-platform-env"]["FEATURE_PLATFORM_ENGINE"] == "${FEATURE_PLATFORM_ENGINE:-pandas}"
    extras = yaml.safe_load((ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1]
                            .split("\n[")[0].replace(" = ", ": "))
    assert extras["spark"] == ["pyspark==4.3.0"]
    assert extras["k8s"] == ["dagster-k8s==0.29.27"] and extras["celery"] == ["dagster-celery==0.29.27"]
