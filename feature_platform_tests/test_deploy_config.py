"""dagster.yaml, workspace.yaml and docker-compose.yml agree with what the code reads.

Docker is not available here, so docker-compose.yml is checked statically, and its settings are
then tried against the local services (same variables, hosts mapped to 127.0.0.1).
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
import redis
import yaml

from feature_platform.config import ENV_VARS, Settings, dagster_instance_config

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PLATFORM_SERVICES = ("user_code", "webserver", "daemon")


def compose_env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in COMPOSE["services"][service]["environment"].items()}


def resolve(value: str) -> str:
    """Compose's ${VAR:-default} with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_runs_the_full_stack():
    assert set(COMPOSE["services"]) == {"postgres", "redis", *PLATFORM_SERVICES}
    assert COMPOSE["services"]["webserver"]["ports"] == ["3000:3000"]
    assert "dagster-daemon" in COMPOSE["services"]["daemon"]["command"]
    assert "code-server" in COMPOSE["services"]["user_code"]["command"]


def test_compose_variables_are_the_ones_the_code_reads():
    for service in PLATFORM_SERVICES:
        env = compose_env(service)
        platform_vars = {k for k in env if k.startswith("FEATURE_PLATFORM_")}
        assert platform_vars <= set(ENV_VARS), platform_vars - set(ENV_VARS)
        assert env["FEATURE_PLATFORM_PROFILE"] == "services"
        assert env["FEATURE_PLATFORM_PG_HOST"] in COMPOSE["services"]
        assert env["FEATURE_PLATFORM_REDIS_HOST"] in COMPOSE["services"]
        assert env["DAGSTER_HOME"] == "/opt/dagster/home"
    pg = COMPOSE["services"]["postgres"]["environment"]
    env = compose_env("user_code")
    assert pg["POSTGRES_PASSWORD"] == env["FEATURE_PLATFORM_PG_PASSWORD"]
    assert pg["POSTGRES_USER"] == env["FEATURE_PLATFORM_PG_USER"]
    assert pg["POSTGRES_DB"] == env["FEATURE_PLATFORM_PG_DB"]
    settings = Settings.from_env({k: resolve(v) for k, v in env.items()})
    assert settings.profile == "services" and settings.pg_password == "feature_platform"


def test_dagster_yaml_files_match_the_generated_instance_config():
    embedded = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    want = dagster_instance_config(Settings.from_env({}))
    assert embedded["storage"]["sqlite"]["base_dir"] == ".feature_platform/dagster/storage"
    assert {k: v for k, v in embedded.items() if k != "storage"} == {k: v for k, v in want.items() if k != "storage"}
    services = yaml.safe_load((ROOT / "deploy" / "dagster.services.yaml").read_text())
    assert services == dagster_instance_config(Settings.from_env({"FEATURE_PLATFORM_PROFILE": "services"}))
    assert embedded["telemetry"] == {"enabled": False} and services["telemetry"] == {"enabled": False}
    for ref in services["storage"]["postgres"]["postgres_db"].values():
        if isinstance(ref, dict):
            assert ref["env"] in ENV_VARS


def test_workspace_files_point_at_the_definitions():
    local = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    assert (local["module_name"], local["attribute"]) == ("feature_platform.definitions", "defs")
    docker = yaml.safe_load((ROOT / "deploy" / "workspace.docker.yaml").read_text())["load_from"][0]["grpc_server"]
    assert docker["host"] == "user_code" and str(docker["port"]) in COMPOSE["services"]["user_code"]["command"]


def test_every_variable_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert [name for name in ENV_VARS if f"`{name}`" not in readme] == []


@pytest.mark.services
def test_compose_settings_work_against_the_local_services(services_settings, tmp_path, monkeypatch):
    """The compose environment, with hosts mapped to the local services, reaches both and runs Dagster."""
    env = {k: resolve(v) for k, v in compose_env("daemon").items()}
    env.update(FEATURE_PLATFORM_PG_HOST="127.0.0.1", FEATURE_PLATFORM_REDIS_HOST="127.0.0.1",
               FEATURE_PLATFORM_PG_PASSWORD="", FEATURE_PLATFORM_HOME=str(tmp_path),
               FEATURE_PLATFORM_PG_DB=services_settings.pg_db,
               FEATURE_PLATFORM_DAGSTER_PG_DB=services_settings.dagster_pg_db,
               FEATURE_PLATFORM_REDIS_DB=str(services_settings.redis_db))
    settings = Settings.from_env(env)
    from feature_platform.stores.postgres import connect

    with connect(settings) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert redis.Redis(host=settings.redis_host, port=settings.redis_port, db=settings.redis_db).ping()

    from dagster import DagsterInstance

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.services.yaml").read_text())
    from feature_platform.stores.postgres import ensure_database

    ensure_database(settings, settings.dagster_pg_db)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    instance = DagsterInstance.from_config(str(home))
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert instance.get_runs() == []
    instance.dispose()
    with psycopg.connect(settings.pg_conninfo(settings.dagster_pg_db)) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)
