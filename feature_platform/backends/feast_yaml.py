"""The deployment's `feature_store.yaml`, so that stock Feast (`feast -c DIR ...`, `FeatureStore(repo_path=DIR)`,
`feast serve`) reads the registry and online store the platform writes.

No secret is written: each password is a `${FEATURE_PLATFORM_..._PASSWORD}` reference, which Feast replaces with
the variable's value when it loads the file (`os.path.expandvars` over the whole text, before parsing the YAML,
in `feast.repo_config.load_repo_config`). Because the value is pasted in as text, a value holding a reference
is written as a YAML literal block (`|-`), where quotes, `#` and `: ` stay plain characters.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import yaml

from feature_platform.backends import build_backends
from feature_platform.config import Settings, env_name, env_reference

FILE_NAME = "feature_store.yaml"
SECRET_FIELDS = ("pg_password", "redis_password")


class FeastConfigWarning(UserWarning):
    """Stock Feast would not read a password of this deployment back as it is (e.g. a Redis password with a comma:
    Feast's connection string splits on commas)."""


class _Expanded(str):
    """A string holding a `${VARIABLE}` reference: written as a literal block."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Expanded, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", str(value), style="|"))


def config_path(settings: Settings) -> Path:
    """Where the platform writes it: beside the embedded registry, `$FEATURE_PLATFORM_HOME/feast/`."""
    return settings.feast_dir / FILE_NAME


def feature_store_yaml(settings: Settings) -> str:
    """The `feature_store.yaml` of `settings`' profile, passwords as references to their variables."""
    body = yaml.dump(_mark_references(build_backends(settings).feast_yaml()), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False)
    header = "# Written by feature-platform for stock Feast: feast -c DIR feature-views list\n"
    if "${" in body:
        header += "# Passwords are read from the environment: export the FEATURE_PLATFORM_* variables named below.\n"
    return header + body


def write_feature_store_yaml(settings: Settings) -> Path:
    """Write it to `config_path(settings)` (replaced atomically), warning (`FeastConfigWarning`) when stock Feast
    would misread a password of these settings."""
    from feature_platform.util.atomic import atomic_write

    text = feature_store_yaml(settings)
    for problem in unreadable_secrets(settings, text):
        warnings.warn(FeastConfigWarning(problem), stacklevel=2)
    path = config_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, durable=False) as tmp:
        tmp.write_text(text)
    return path


def unreadable_secrets(settings: Settings, text: str) -> list[str]:
    """The passwords Feast would not read back from `text` as `settings` hold them, resolved here the way Feast
    resolves them (the values stay in this process)."""
    resolved = text
    for field in SECRET_FIELDS:
        resolved = resolved.replace(env_reference(field), getattr(settings, field))
    try:
        config = yaml.safe_load(resolved)
    except yaml.YAMLError:
        return [f"the passwords ({', '.join(env_name(f) for f in SECRET_FIELDS)}) do not fit in {FILE_NAME}"]
    problems = []
    read_pg = {config["offline_store"].get("password", ""),
               config["registry"].get("sqlalchemy_config_kwargs", {}).get("connect_args", {}).get("password",
                                                                                                  settings.pg_password)}
    if config["offline_store"]["type"] == "postgres" and read_pg != {settings.pg_password}:
        problems.append(env_name("pg_password"))
    if config["online_store"]["type"] == "redis":
        read = _redis_options(config["online_store"]["connection_string"]).get("password", "")
        if str(read) != settings.redis_password or isinstance(read, (bool, float, dict, list)):
            problems.append(env_name("redis_password"))
    return [f"stock Feast would not read {name} back as set (Feast pastes the value into {FILE_NAME} as text); "
            "the platform itself is not affected" for name in problems]


def _redis_options(connection_string: str) -> dict:
    """The `key=value` options of Feast's Redis connection string, parsed as Feast 0.67 parses them (split on
    commas, then each value JSON-decoded when it can be)."""
    options = {}
    for item in connection_string.split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
            options[key] = value
    return options


def _mark_references(value):
    if isinstance(value, dict):
        return {k: _mark_references(v) for k, v in value.items()}
    if isinstance(value, str) and "${" in value:
        return _Expanded(value)
    return value
