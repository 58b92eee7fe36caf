"""Profiles chosen by environment: the one place that knows about `embedded` versus `services`.

Every setting has a documented environment variable and a default that works on a laptop
(embedded) or against the local services on 127.0.0.1 (services). Secrets are redacted in repr.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from feature_platform.errors import ConfigurationError, shorten

Profile = Literal["embedded", "services"]
Engine = Literal["pandas", "spark"]
ENGINES = ("pandas", "spark")
EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")

# name -> (default, description); the README's configuration table is generated from this.
ENV_VARS: dict[str, tuple[str, str]] = {
    "FEATURE_PLATFORM_REPO": ("", "Your feature repository: a directory, a .py file or an importable module declaring sources, entities, feature views, services and training sets (like a Feast repo); empty: the example repository `examples/chat_activity`"),
    "FEATURE_PLATFORM_PROFILE": ("embedded", "`embedded` (SQLite/Parquet, no server) or `services` (PostgreSQL + Redis)"),
    "FEATURE_PLATFORM_HOME": (".feature_platform", "Directory for all local state: raw demo data, Parquet tables, Feast registry, quarantine, Dagster storage"),
    "FEATURE_PLATFORM_SESSIONS_PATH": ("$FEATURE_PLATFORM_HOME/raw/sessions", "The example repository's `sessions` source: Parquet file or directory of the raw sessions log; when set, the demo generator is not used"),
    "FEATURE_PLATFORM_PARTITIONS_START": ("2025-01-01", "First daily partition of every feature view"),
    "FEATURE_PLATFORM_BACKFILL_DAYS_PER_RUN": ("92", "Partitions per Dagster run in a backfill (BackfillPolicy.multi_run); each run computes them in one pass"),
    "FEATURE_PLATFORM_COMPUTE_AHEAD": ("1", "`1`: a range run computes its next chunk of days (a thread beside the run) while the current one is validated, written and checked (~20% faster on 2 cores, one more chunk in memory); `0`: one chunk at a time"),
    "FEATURE_PLATFORM_ENGINE": ("pandas", "Compute engine of the window aggregations: `pandas` (single machine) or `spark` (PySpark)"),
    "FEATURE_PLATFORM_SPARK_MASTER": ("local[2]", "Spark master URL of the `spark` engine (e.g. `spark://host:7077`)"),
    "FEATURE_PLATFORM_EXECUTOR": ("in_process", "Dagster executor of every run: `in_process`, `multiprocess`, `celery` (dagster-celery) or `k8s` (dagster-k8s' `k8s_job_executor`)"),
    "FEATURE_PLATFORM_EXECUTOR_CONFIG": ("", "YAML file whose `execution: config:` block configures that executor (e.g. `deploy/scaling/celery.yaml`); empty: its defaults"),
    "FEATURE_PLATFORM_DEMO_USERS": ("2000", "Users in the generated demo sessions log"),
    "FEATURE_PLATFORM_DEMO_SEED": ("7", "Seed of the demo generator"),
    "FEATURE_PLATFORM_PG_HOST": ("127.0.0.1", "PostgreSQL host (services profile)"),
    "FEATURE_PLATFORM_PG_PORT": ("5432", "PostgreSQL port"),
    "FEATURE_PLATFORM_PG_USER": ("postgres", "PostgreSQL user"),
    "FEATURE_PLATFORM_PG_PASSWORD": ("", "PostgreSQL password (empty for trust auth)"),
    "FEATURE_PLATFORM_PG_DB": ("feature_platform", "Database for offline tables and the Feast SQL registry (created if missing)"),
    "FEATURE_PLATFORM_DAGSTER_PG_DB": ("dagster", "Database for Dagster run/event/schedule storage (created if missing)"),
    "FEATURE_PLATFORM_REDIS_HOST": ("127.0.0.1", "Redis host of the online store (services profile)"),
    "FEATURE_PLATFORM_REDIS_PORT": ("6379", "Redis port"),
    "FEATURE_PLATFORM_REDIS_DB": ("0", "Redis database number"),
    "FEATURE_PLATFORM_REDIS_PASSWORD": ("", "Redis password (empty for none)"),
    "FEATURE_PLATFORM_REDIS_CLUSTER_NODES": ("", "Comma-separated `host:port` seed nodes of a Redis Cluster online store; empty: the single Redis above"),
    "FEATURE_PLATFORM_ALERT_WEBHOOK_URL": ("", "Generic webhook for alerts (JSON POST); empty: Dagster log only"),
    "FEATURE_PLATFORM_ALERT_SLACK_WEBHOOK_URL": ("", "Slack-compatible incoming webhook for alerts; empty: none"),
    "FEATURE_PLATFORM_SERVING_TOKENS_FILE": ("", "YAML file of the HTTP feature server's callers: token (or its sha256) and roles; empty: no authentication (loopback only)"),
    "FEATURE_PLATFORM_SERVING_MAX_BODY_BYTES": ("4194304", "Largest request body the HTTP feature server reads, in bytes; a larger one is refused with 413"),
    "FEATURE_PLATFORM_SERVING_MAX_ENTITIES": ("10000", "Most entity rows one /get-online-features request may ask for; more are refused with 413"),
    "FEATURE_PLATFORM_ONLINE_READ_TIMEOUT_SEC": ("2", "Seconds one online read (API, CLI `online`, HTTP server, `/health`) waits for Redis; a Redis that is down or frozen fails it with StoreUnavailableError instead of hanging it"),
    "FEATURE_PLATFORM_ONLINE_WRITE_TIMEOUT_SEC": ("10", "Seconds one online write (materialization, push) keeps retrying an unreachable or unresponsive Redis before it fails with StoreUnavailableError"),
}

OFFLINE_SCHEMA = "offline"  # PostgreSQL schema holding one table per feature view
# Every PostgreSQL connection (psycopg, the Feast registry's SQLAlchemy engine, the Dagster storage of the
# instance the API creates) gives up connecting after this long: a server that accepts TCP and never answers would otherwise hang it (libpq
# waits forever, psycopg 130 s).
PG_CONNECT_TIMEOUT_SEC = 5
FEAST_PROJECT = "feature_platform"
# The feature repository when FEATURE_PLATFORM_REPO is unset: the example shipped with the project (a source checkout).
EXAMPLE_REPO = Path(__file__).resolve().parent.parent / "examples" / "chat_activity"


# Values never shown in a message, even cut: a password or a webhook URL (its path is the token).
SECRET_VARS = frozenset({"FEATURE_PLATFORM_PG_PASSWORD", "FEATURE_PLATFORM_REDIS_PASSWORD",
                         "FEATURE_PLATFORM_ALERT_WEBHOOK_URL", "FEATURE_PLATFORM_ALERT_SLACK_WEBHOOK_URL"})
# Partition days must stay inside pandas' nanosecond timestamps (1677-09-21 .. 2262-04-11) with room for
# windows and TTLs on both sides; the epoch is a clear floor.
PARTITIONS_RANGE = (date(1970, 1, 1), date(2199, 12, 31))
_INTEGER = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only: int() would also take '٣', '1_000' or ' 3 '
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def _env(name: str, environ: dict[str, str]) -> str:
    raw = environ.get(name, ENV_VARS[name][0])
    if not isinstance(raw, str):
        raise _bad(name, raw, "a string")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:  # bytes the OS could not decode: no driver or client could send them either
        raise _bad(name, raw, "UTF-8 text") from None
    return raw


def _bad(name: str, raw, expected: str) -> ConfigurationError:
    """The one-line error for a variable: its name, what it must be, and its value (cut; a secret's never)."""
    if name in SECRET_VARS:
        return ConfigurationError(f"{name} must be {expected} (its value is a secret: not shown)")
    return ConfigurationError(f"{name} must be {expected}, not {shorten(raw)}")


def _int(name: str, environ: dict[str, str], low: int, high: int, expected: str) -> int:
    raw = _env(name, environ)
    value = int(raw) if _INTEGER.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise _bad(name, raw, expected)
    return value


def _positive_int(name: str, environ: dict[str, str]) -> int:
    return _int(name, environ, 1, 2**31 - 1, "a positive integer")


def _port(name: str, environ: dict[str, str]) -> int:
    return _int(name, environ, 1, 65535, "a TCP port from 1 to 65535")


def _choice(name: str, environ: dict[str, str], choices: tuple[str, ...], expected: str) -> str:
    raw = _env(name, environ)
    if raw not in choices:
        raise _bad(name, raw, expected)
    return raw


def _text(name: str, environ: dict[str, str], expected: str, *, empty: bool = False, spaces: bool = True,
          max_bytes: int | None = None) -> str:
    """A free-form value: no control characters (a NUL cannot reach a driver or the OS), within limits."""
    raw = _env(name, environ)
    if ((not raw and not empty) or _UNPRINTABLE.search(raw) or (not spaces and any(c.isspace() for c in raw))
            or (max_bytes is not None and len(raw.encode()) > max_bytes)):
        raise _bad(name, raw, expected)
    return raw


def _host(name: str, environ: dict[str, str], separators: str = "") -> str:
    expected = "a host name or address (no spaces" + "".join(f", {c!r}" for c in separators) + " or control characters)"
    host = _text(name, environ, expected, spaces=False, max_bytes=255)
    if any(c in host for c in separators):
        raise _bad(name, host, expected)
    return host


def _path(name: str, environ: dict[str, str], *, empty: bool = False) -> str:
    return _text(name, environ, _path_expected(empty), empty=empty, max_bytes=4096)


def _path_expected(empty: bool) -> str:
    return "a file system path of at most 4096 bytes without control characters" + (" (or empty)" if empty else "")


def _absolute_path(name: str, environ: dict[str, str], *, empty: bool = False) -> Path | None:
    """`_path` made absolute (runs and child processes may start elsewhere), within the limit once absolute too:
    a relative value grows by the working directory, and the environment handed to children carries that."""
    raw = _path(name, environ, empty=empty)
    if not raw:
        return None
    path = Path(raw).expanduser().absolute()
    if len(str(path).encode()) > 4096:
        raise _bad(name, raw, f"{_path_expected(empty)}, once made absolute ({len(str(path).encode())} bytes)")
    return path


def _database(name: str, environ: dict[str, str]) -> str:
    # PostgreSQL cuts longer names to 63 bytes without an error: two long names could name one database.
    return _text(name, environ, "a PostgreSQL database name of 1 to 63 bytes without control characters",
                 max_bytes=63)


def _partitions_start(environ: dict[str, str]) -> date:
    name = "FEATURE_PLATFORM_PARTITIONS_START"
    raw = _env(name, environ)
    low, high = PARTITIONS_RANGE
    expected = f"an ISO day (YYYY-MM-DD) from {low} to {high}"
    try:
        day = date.fromisoformat(raw) if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw) else None
    except ValueError:  # 2025-13-01, 2025-02-30
        day = None
    if day is None or not low <= day <= high:
        raise _bad(name, raw, expected)
    return day


def _webhook(name: str, environ: dict[str, str]) -> str:
    raw = _text(name, environ, "an http(s) URL (or empty)", empty=True, spaces=False)
    if raw:
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 - raises ValueError on a port out of range
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad(name, raw, "an http(s) URL (or empty)")
    return raw


def _positive_seconds(name: str, environ: dict[str, str]) -> float:
    raw = _env(name, environ)
    try:  # ASCII digits only, as for integers (float() would take '١' or '1_0'); '1e-05' is as_env's form
        value = float(raw) if re.fullmatch(r"[0-9.eE+-]{1,32}", raw) else 0.0
    except ValueError:
        value = 0.0
    if not 0 < value < 86_400:  # a budget must end
        raise _bad(name, raw, "a number of seconds above 0 and below a day (e.g. 2 or 0.5)")
    return value


def _repo(environ: dict[str, str]) -> str:
    """A path (made absolute: child processes and runs may start elsewhere) or a dotted module name."""
    raw = _path("FEATURE_PLATFORM_REPO", environ, empty=True)
    try:
        exists = Path(raw).exists()
    except (OSError, ValueError):  # a name too long for the file system: not a path (loading says what it is)
        exists = False
    if raw and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", raw) and not exists:
        return raw  # an importable module
    return str(_absolute_path("FEATURE_PLATFORM_REPO", environ, empty=True) or "")


def parse_nodes(raw: str) -> list[tuple[str, int]]:
    """`host:port,host:port` -> [(host, port)]; ConfigurationError naming the variable on anything else (Feast
    splits each node on ':', so a host cannot hold one: no IPv6 literals)."""
    nodes = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        host, _, port = item.partition(":")
        if (not host or not _INTEGER.fullmatch(port) or not 0 < int(port) < 65536 or "=" in item
                or _UNPRINTABLE.search(item) or any(c.isspace() for c in host)):
            raise ConfigurationError(f"FEATURE_PLATFORM_REDIS_CLUSTER_NODES must be comma-separated host:port seed "
                                     f"nodes, not {shorten(item)} in {shorten(raw)}")
        nodes.append((host, int(port)))
    return nodes


def _cluster_nodes(env: dict[str, str], redis_db: int) -> str:
    nodes = parse_nodes(_env("FEATURE_PLATFORM_REDIS_CLUSTER_NODES", env))
    if nodes and redis_db != 0:
        raise ConfigurationError("FEATURE_PLATFORM_REDIS_DB must be 0 with FEATURE_PLATFORM_REDIS_CLUSTER_NODES: "
                                 "a Redis Cluster has database 0 only")
    return ",".join(f"{host}:{port}" for host, port in nodes)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one deployment."""

    profile: Profile
    home: Path
    sessions_path: Path
    partitions_start: date
    demo_users: int
    demo_seed: int
    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str = field(repr=False)
    pg_db: str
    dagster_pg_db: str
    redis_host: str
    redis_port: int
    redis_db: int
    redis_password: str = field(repr=False)
    redis_cluster_nodes: str = ""  # comma-separated host:port seed nodes; empty: the single Redis
    alert_webhook_url: str = field(default="", repr=False)
    alert_slack_webhook_url: str = field(default="", repr=False)
    backfill_days_per_run: int = 92
    compute_ahead: bool = True  # a range run computes its next chunk while it writes the current one
    serving_tokens_file: str = ""
    serving_max_body_bytes: int = 4 * 1024 * 1024
    serving_max_entities: int = 10_000
    online_read_timeout_sec: float = 2.0
    online_write_timeout_sec: float = 10.0
    engine: Engine = "pandas"
    spark_master: str = "local[2]"
    executor: str = "in_process"
    executor_config: str = ""
    repo: str = ""  # the feature repository's location; empty: the example repository

    def __post_init__(self) -> None:
        # The choices that pick code paths, checked for settings built or changed (`with_`) in code too.
        for name, choices in (("profile", ("embedded", "services")), ("engine", ENGINES), ("executor", EXECUTORS)):
            if getattr(self, name) not in choices:
                raise _bad(env_name(name), getattr(self, name), f"one of {', '.join(choices)}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """The settings of `environ` (default: the process environment). Every variable is checked here:
        a bad value is a `ConfigurationError` naming the variable, before anything connects or writes."""
        env = dict(os.environ if environ is None else environ)
        profile = _choice("FEATURE_PLATFORM_PROFILE", env, ("embedded", "services"), "'embedded' or 'services'")
        engine = _choice("FEATURE_PLATFORM_ENGINE", env, ENGINES, "'pandas' or 'spark'")
        executor = _choice("FEATURE_PLATFORM_EXECUTOR", env, EXECUTORS, f"one of {', '.join(EXECUTORS)}")
        home = _absolute_path("FEATURE_PLATFORM_HOME", env)
        sessions = _absolute_path("FEATURE_PLATFORM_SESSIONS_PATH", {"FEATURE_PLATFORM_SESSIONS_PATH": "", **env},
                                  empty=True)
        redis_db = _int("FEATURE_PLATFORM_REDIS_DB", env, 0, 2**31 - 1, "a Redis database number (0 or more)")
        pg_password = _env("FEATURE_PLATFORM_PG_PASSWORD", env)
        if "\x00" in pg_password:  # libpq's strings end at a NUL: the password would be cut there
            raise _bad("FEATURE_PLATFORM_PG_PASSWORD", pg_password, "a password without a NUL character")
        return cls(
            profile=profile,  # type: ignore[arg-type]
            home=home,
            sessions_path=sessions or home / "raw" / "sessions",
            partitions_start=_partitions_start(env),
            demo_users=_positive_int("FEATURE_PLATFORM_DEMO_USERS", env),
            demo_seed=_int("FEATURE_PLATFORM_DEMO_SEED", env, 0, 2**63 - 1, "a non-negative integer"),
            pg_host=_host("FEATURE_PLATFORM_PG_HOST", env),
            pg_port=_port("FEATURE_PLATFORM_PG_PORT", env),
            pg_user=_text("FEATURE_PLATFORM_PG_USER", env, "a PostgreSQL user name without control characters",
                          max_bytes=63),
            pg_password=pg_password,
            pg_db=_database("FEATURE_PLATFORM_PG_DB", env),
            dagster_pg_db=_database("FEATURE_PLATFORM_DAGSTER_PG_DB", env),
            redis_host=_host("FEATURE_PLATFORM_REDIS_HOST", env, ",=:"),  # Feast splits its string on these: no IPv6 literal
            redis_port=_port("FEATURE_PLATFORM_REDIS_PORT", env),
            redis_db=redis_db,
            # Any text: Feast gets it JSON-escaped (backends/services.py), the Redis clients as it is.
            redis_password=_env("FEATURE_PLATFORM_REDIS_PASSWORD", env),
            redis_cluster_nodes=_cluster_nodes(env, redis_db),
            alert_webhook_url=_webhook("FEATURE_PLATFORM_ALERT_WEBHOOK_URL", env),
            alert_slack_webhook_url=_webhook("FEATURE_PLATFORM_ALERT_SLACK_WEBHOOK_URL", env),
            backfill_days_per_run=_positive_int("FEATURE_PLATFORM_BACKFILL_DAYS_PER_RUN", env),
            compute_ahead=_choice("FEATURE_PLATFORM_COMPUTE_AHEAD", env, ("1", "0"), "1 or 0") == "1",
            serving_tokens_file=_path("FEATURE_PLATFORM_SERVING_TOKENS_FILE", env, empty=True),
            serving_max_body_bytes=_positive_int("FEATURE_PLATFORM_SERVING_MAX_BODY_BYTES", env),
            serving_max_entities=_positive_int("FEATURE_PLATFORM_SERVING_MAX_ENTITIES", env),
            online_read_timeout_sec=_positive_seconds("FEATURE_PLATFORM_ONLINE_READ_TIMEOUT_SEC", env),
            online_write_timeout_sec=_positive_seconds("FEATURE_PLATFORM_ONLINE_WRITE_TIMEOUT_SEC", env),
            engine=engine,  # type: ignore[arg-type]
            spark_master=_text("FEATURE_PLATFORM_SPARK_MASTER", env, "a Spark master URL such as local[2] or "
                               "spark://host:7077", spaces=False),
            executor=executor,
            executor_config=_path("FEATURE_PLATFORM_EXECUTOR_CONFIG", env, empty=True),
            repo=_repo(env),
        )

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    @property
    def redis_nodes(self) -> list[tuple[str, int]]:
        """The Redis Cluster's seed nodes; empty for a single Redis."""
        return parse_nodes(self.redis_cluster_nodes)

    @property
    def redis_address(self) -> str:
        """Where the online store is, for messages: the single Redis or the cluster's seed nodes."""
        if self.redis_cluster_nodes:
            return f"Redis Cluster {self.redis_cluster_nodes}"
        return f"Redis at {self.redis_host}:{self.redis_port}"

    @property
    def repo_location(self) -> str:
        """Where the feature repository is: `repo`, or the example repository when it is empty."""
        return self.repo or str(EXAMPLE_REPO)

    @property
    def uses_generated_sessions(self) -> bool:
        return self.sessions_path == self.home / "raw" / "sessions"

    # --- derived locations -------------------------------------------------------------------
    @property
    def offline_dir(self) -> Path:
        return self.home / "offline"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    def pg_conninfo(self, db: str | None = None) -> str:
        """libpq connection string (psycopg); password included only when set. Values are quoted by psycopg:
        a password with a space or quote must neither break the string nor show up in its parse error."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=self.pg_host, port=self.pg_port, user=self.pg_user, dbname=db or self.pg_db,
                             password=self.pg_password or None, connect_timeout=PG_CONNECT_TIMEOUT_SEC)

    def pg_sqlalchemy_url(self) -> str:
        from urllib.parse import quote

        auth = quote(self.pg_user, safe="") + (f":{quote(self.pg_password, safe='')}" if self.pg_password else "")
        return (f"postgresql+psycopg://{auth}@{self.pg_host}:{self.pg_port}/{self.pg_db}"
                f"?connect_timeout={PG_CONNECT_TIMEOUT_SEC}")

    def as_env(self) -> dict[str, str]:
        """The settings as environment variables, for a child process (`dagster dev`, a Spark executor, a test's
        CLI run): `from_env` of it gives these settings back. Within a process, pass the settings themselves."""
        values = {env_name(f.name): _as_text(getattr(self, f.name)) for f in fields(self)}
        if self.uses_generated_sessions:  # the default follows FEATURE_PLATFORM_HOME in the child, too
            del values["FEATURE_PLATFORM_SESSIONS_PATH"]
        return values


def env_name(field_name: str) -> str:
    """The environment variable of a `Settings` field: `FEATURE_PLATFORM_` and its name in capitals."""
    return f"FEATURE_PLATFORM_{field_name.upper()}"


def env_reference(field_name: str) -> str:
    """`${FEATURE_PLATFORM_<FIELD>}`: a reference to that variable, which Feast's feature_store.yaml resolves."""
    return "${" + env_name(field_name) + "}"


def _as_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)  # exact: from_env reads the same float back
    return str(value)


# One variable per field and one field per variable: the documented list is the model's.
if set(ENV_VARS) != {env_name(f.name) for f in fields(Settings)}:
    raise AssertionError("ENV_VARS and the fields of Settings differ")


__all__ = ["ENV_VARS", "ConfigurationError", "Settings"]
