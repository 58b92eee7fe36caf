"""dagster.yaml, workspace.yaml and docker-compose.yml agree with what the code reads.

Docker is not available here, so docker-compose.yml is checked statically, and its settings are
then tried against the local services (same variables, hosts mapped to 127.0.0.1).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from feature_platform.backends import dagster_instance_config
from feature_platform.config import ENV_VARS, Settings
from feature_platform_tests.helpers import IN_CI, free_port

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PLATFORM_SERVICES = ("user_code", "webserver", "daemon", "feature_server")


def compose_env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in COMPOSE["services"][service]["environment"].items()}


def resolve(value: str) -> str:
    """Compose's ${VAR:-default} with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def env_file(path: Path) -> dict[str, str]:
    """A compose env file: NAME=value lines, # comments."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def interpolated(value: str) -> list[str]:
    """The variables a compose value interpolates (`${VAR}`, `${VAR:?msg}`, `${VAR:-default}`)."""
    return re.findall(r"(?<!\$)\$\{([A-Z_]+)", value)


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
    # The password reaches PostgreSQL (interpolated from .env) and the platform (its env_file) under one name.
    assert interpolated(pg["POSTGRES_PASSWORD"]) == ["FEATURE_PLATFORM_PG_PASSWORD"]
    assert pg["POSTGRES_USER"] == env["FEATURE_PLATFORM_PG_USER"]
    assert pg["POSTGRES_DB"] == env["FEATURE_PLATFORM_PG_DB"]
    example = env_file(ROOT / ".env.example")
    settings = Settings.from_env({k: resolve(v) for k, v in env.items()} | example)
    assert settings.profile == "services"
    assert settings.pg_password == example["FEATURE_PLATFORM_PG_PASSWORD"] != ""
    assert settings.redis_password == example["FEATURE_PLATFORM_REDIS_PASSWORD"] != ""


def test_compose_publishes_only_the_webserver_and_reads_secrets_from_an_env_file():
    services = COMPOSE["services"]
    assert {name for name, service in services.items() if "ports" in service} == {"webserver", "feature_server"}
    # The feature server is published for inference services, so it must authenticate them.
    server = services["feature_server"]
    assert server["environment"]["FEATURE_PLATFORM_SERVING_TOKENS_FILE"] == "/run/secrets/serving_tokens"
    assert server["secrets"] == ["serving_tokens"] and "--host" in server["command"]
    assert COMPOSE["secrets"]["serving_tokens"]["file"].startswith("./secrets/")
    assert "/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    assert not any("expose" in service or service.get("network_mode") == "host" for service in services.values())
    for name in PLATFORM_SERVICES:
        assert services[name]["env_file"] == [".env"], name
    # No secret is a literal: each is interpolated, with no default to fall back on (`${VAR:?...}`).
    secret_names = [name for name in ENV_VARS if name.endswith(("_PASSWORD", "_WEBHOOK_URL"))]
    assignments = dict(mappings(COMPOSE))
    assert {"POSTGRES_PASSWORD", "FEATURE_PLATFORM_REDIS_PASSWORD"} <= set(assignments)
    for key, values in assignments.items():
        if key in secret_names or key == "POSTGRES_PASSWORD":
            assert all(re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", v) for v in values), (key, values)
    assert not set(secret_names) & set(compose_env("user_code"))  # the platform's come from the env_file
    command = " ".join(services["redis"]["command"])
    assert '--requirepass "$$FEATURE_PLATFORM_REDIS_PASSWORD"' in command  # expanded in the container
    # .env holds the real values: ignored by git, and every secret the code reads has a placeholder.
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert set(secret_names) <= set(env_file(ROOT / ".env.example"))


def test_the_compose_redis_command_requires_its_password(tmp_path):
    """The redis service's command and healthcheck, run by a real redis-server (Docker is not available here)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        if IN_CI:
            pytest.fail("redis-server and redis-cli are needed")
        pytest.skip("redis-server and redis-cli are needed")
    service = COMPOSE["services"]["redis"]
    shell, flag, script = service["command"]
    assert (shell, flag) == ("sh", "-c")
    port = free_port()
    script = script.replace("$$", "$") + f" --port {port} --bind 127.0.0.1 --dir {tmp_path}"  # compose unescapes $$
    secret = "compose-redis-secret"
    env = {**os.environ, "FEATURE_PLATFORM_REDIS_PASSWORD": secret}
    server = subprocess.Popen([shell, flag, script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        authed = redis.Redis(port=port, password=secret, socket_timeout=2)
        for _ in range(100):
            try:
                assert authed.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        assert authed.ping()
        once = Retry(NoBackoff(), 0)  # redis-py retries an authentication error by default; it is final here
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port, socket_timeout=2, retry=once).ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port, password="wrong", socket_timeout=2, retry=once).ping()
        kind, check = service["healthcheck"]["test"]
        assert kind == "CMD-SHELL"
        check = check.replace("$$", "$").replace("redis-cli", f"redis-cli -p {port}")
        assert subprocess.run(["sh", "-c", check], env=env).returncode == 0
        wrong = {**env, "FEATURE_PLATFORM_REDIS_PASSWORD": "wrong"}
        assert subprocess.run(["sh", "-c", check], env=wrong, stderr=subprocess.DEVNULL).returncode != 0
    finally:
        server.kill()
        server.wait()


def mappings(node):
    """Every (key, [string values]) of a YAML tree."""
    found: dict[str, list[str]] = {}
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(value, str):
                    found.setdefault(str(key), []).append(value)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found.items()


def test_dagster_yaml_files_match_the_generated_instance_config():
    embedded = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    want = dagster_instance_config(Settings.from_env({}))
    assert embedded["storage"]["custom"]["config"]["base_dir"] == ".feature_platform/dagster/storage"
    assert {k: v for k, v in embedded["storage"]["custom"].items() if k != "config"} == \
        {k: v for k, v in want["storage"]["custom"].items() if k != "config"}
    assert {k: v for k, v in embedded.items() if k != "storage"} == {k: v for k, v in want.items() if k != "storage"}
    services = yaml.safe_load((ROOT / "deploy" / "dagster.services.yaml").read_text())
    assert services == dagster_instance_config(Settings.from_env({"FEATURE_PLATFORM_PROFILE": "services"}))
    assert embedded["telemetry"] == {"enabled": False} and services["telemetry"] == {"enabled": False}
    for ref in services["storage"]["postgres"]["postgres_db"].values():
        if isinstance(ref, dict):
            assert ref["env"] in ENV_VARS


@pytest.mark.parametrize("shipped", ["dagster.yaml", pytest.param("deploy/dagster.services.yaml", marks=pytest.mark.services),
                                     "deploy/scaling/dagster.k8s.yaml"])
def test_shipped_dagster_yaml_files_monitor_runs(shipped, tmp_path, monkeypatch, request):
    """Run monitoring is on in every shipped instance (its daemon marks runs whose worker died as failed), with
    a run launcher that can check the workers, and so is declarative automation; docker-compose's image uses the
    services file."""
    from dagster._core.instance.config import dagster_instance_config as load_instance_config

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / shipped, home / "dagster.yaml")
    config, _ = load_instance_config(str(home))  # validated against Dagster's instance schema
    assert config["auto_materialize"] == {"enabled": True, "use_sensors": True}  # the views' automation sensor
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True and monitoring["max_resume_run_attempts"] == 0
    assert monitoring["poll_interval_seconds"] <= 60 and monitoring["start_timeout_seconds"] >= 180
    if "k8s" in shipped:
        assert config["run_launcher"]["class"] == "K8sRunLauncher"  # checks its pods itself
        return
    from dagster import DagsterInstance

    from feature_platform.defs.run_workers import WorkerCheckingRunLauncher

    monkeypatch.chdir(tmp_path)  # the embedded file's storage is relative
    settings = Settings.from_env({})
    if "services" in shipped:
        from feature_platform.stores.postgres import ensure_database

        settings = request.getfixturevalue("services_settings")
        ensure_database(settings, settings.dagster_pg_db)
    for name, value in settings.as_env().items():
        monkeypatch.setenv(name, value)
    instance = DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.run_launcher, WorkerCheckingRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled and "MONITORING" in instance.get_required_daemon_types()
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 2
    finally:
        instance.dispose()
    if "services" in shipped:
        dockerfile = (ROOT / "Dockerfile").read_text()
        assert "cp deploy/dagster.services.yaml $DAGSTER_HOME/dagster.yaml" in dockerfile
        assert COMPOSE["services"]["daemon"]["environment"]["DAGSTER_HOME"] == "/opt/dagster/home"


def test_workspace_files_point_at_the_definitions():
    local = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    assert (local["module_name"], local["attribute"]) == ("feature_platform.definitions", "defs")
    docker = yaml.safe_load((ROOT / "deploy" / "workspace.docker.yaml").read_text())["load_from"][0]["grpc_server"]
    assert docker["host"] == "user_code" and str(docker["port"]) in COMPOSE["services"]["user_code"]["command"]


def test_dagster_devs_temporary_instances_are_ignored_by_git(tmp_path):
    """`dagster dev` without DAGSTER_HOME makes its instance in a `.tmp_dagster_home_*` folder of its working
    directory (the repository root), left behind when it is killed."""
    from dagster._cli.utils import TMP_DAGSTER_HOME_PREFIX

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    folder = f"{TMP_DAGSTER_HOME_PREFIX}k2x9_q1/history/runs.db"
    assert subprocess.run(["git", "check-ignore", "-q", folder], cwd=ROOT).returncode == 0


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
