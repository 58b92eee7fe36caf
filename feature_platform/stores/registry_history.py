"""The registry's lock and change history: who changed which feature view, when, and how.

`apply` and `remove` run read-registry / compare / write-registry / record-history as one critical
section under a lock that every process of a deployment shares, so two concurrent applies cannot both
plan against the same registry state and lose one's update: the second one plans against what the
first one wrote.

- services: a PostgreSQL advisory lock (session level, on its own connection) and the table
  `feature_platform_registry_history` in the platform database, beside Feast's SQL registry;
- embedded: an exclusive file lock (`filelock`, an `flock`) on `$FEATURE_PLATFORM_HOME/feast/registry.lock` and
  the same table in the SQLite file `$FEATURE_PLATFORM_HOME/feast/registry_history.db`.
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from feature_platform.config import Settings
from feature_platform.errors import StoreUnavailableError
from feature_platform.util.locks import LockTimeout, exclusive

TABLE = "feature_platform_registry_history"
LOCK_TIMEOUT_SEC = 120
_PG_LOCK_KEY = 0x46505245  # one advisory lock key for registry changes ("FPRE")
COLUMNS = ["at", "object", "kind", "family", "version", "action", "classification", "user", "via", "fingerprint", "diff"]


@dataclass
class HistoryEntry:
    object: str  # the feature view (or feature service) name
    kind: str  # "feature_view" or "feature_service"
    action: str  # create / update / remove
    classification: str  # new view, new version, additive, removed, ...
    user: str
    via: str  # "apply", "auto-apply", "remove"
    family: str | None = None
    version: int | None = None
    fingerprint: str | None = None
    diff: list[dict] = field(default_factory=list)


class RegistryLog(ABC):
    @abstractmethod
    @contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT_SEC) -> Iterator[None]:
        """Hold the deployment-wide registry lock (blocks until it is free, at most `timeout` seconds)."""

    @abstractmethod
    def record(self, entries: list[HistoryEntry]) -> None:
        """Append entries (one transaction); the time is the database's."""

    @abstractmethod
    def _rows(self, name: str | None) -> list[tuple]:
        ...

    def entries(self, name: str | None = None) -> pd.DataFrame:
        """The history, oldest first: time (UTC), object, kind, family, version, action, classification,
        user, via, fingerprint and the diff (a list of changes). `name` filters by view or family."""
        frame = pd.DataFrame(self._rows(name), columns=COLUMNS)
        frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601") if len(frame) else pd.Series(
            dtype="datetime64[ns, UTC]")
        frame["diff"] = [json.loads(d) if isinstance(d, str) else d for d in frame["diff"]]
        frame["version"] = frame["version"].astype("Int64")
        return frame


class PostgresRegistryLog(RegistryLog):
    def __init__(self, settings: Settings):
        self.settings = settings
        self._ready = False

    def _connect(self, ensure: bool = True, **kwargs):
        import psycopg

        from feature_platform.stores.postgres import connect

        conn = connect(self.settings, **kwargs)
        if ensure and not self._ready:
            try:
                with conn.transaction():
                    conn.execute(f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                        id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
                        object TEXT NOT NULL, kind TEXT NOT NULL, family TEXT, version INTEGER, action TEXT NOT NULL,
                        classification TEXT NOT NULL, "user" TEXT NOT NULL, via TEXT NOT NULL, fingerprint TEXT,
                        diff JSONB NOT NULL)""")
            except psycopg.errors.UniqueViolation:
                pass  # created concurrently by another process
            self._ready = True
        return conn

    @contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT_SEC) -> Iterator[None]:
        import psycopg

        with self._connect(ensure=False, autocommit=True) as conn:
            conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (_PG_LOCK_KEY,))
            except psycopg.errors.QueryCanceled as exc:
                raise StoreUnavailableError(
                    f"the registry lock stayed taken for {timeout:.0f}s (another apply or remove is running)") from exc
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_PG_LOCK_KEY,))

    def record(self, entries: list[HistoryEntry]) -> None:
        if not entries:
            return
        with self._connect() as conn, conn.transaction():
            for e in entries:
                conn.execute(
                    f'INSERT INTO {TABLE} (object, kind, family, version, action, classification, "user", via, '
                    "fingerprint, diff) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
                    (e.object, e.kind, e.family, e.version, e.action, e.classification, e.user, e.via,
                     e.fingerprint, json.dumps(e.diff)))

    def _rows(self, name: str | None) -> list[tuple]:
        query = (f'SELECT at, object, kind, family, version, action, classification, "user", via, fingerprint, diff '
                 f"FROM {TABLE} WHERE %(name)s::text IS NULL OR object = %(name)s OR family = %(name)s ORDER BY id")
        with self._connect() as conn:
            return [(r[0].astimezone(timezone.utc).isoformat(), *r[1:]) for r in conn.execute(query, {"name": name})]


class SqliteRegistryLog(RegistryLog):
    def __init__(self, settings: Settings):
        directory = settings.feast_dir
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "registry_history.db"
        self.lock_path = directory / "registry.lock"
        with closing(self._connect()) as conn, conn:
            conn.execute(f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, object TEXT NOT NULL, kind TEXT NOT NULL,
                family TEXT, version INTEGER, action TEXT NOT NULL, classification TEXT NOT NULL, user TEXT NOT NULL,
                via TEXT NOT NULL, fingerprint TEXT, diff TEXT NOT NULL)""")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    @contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT_SEC) -> Iterator[None]:
        with ExitStack() as held:
            try:
                held.enter_context(exclusive(self.lock_path, timeout))
            except LockTimeout:
                raise StoreUnavailableError(f"the registry lock {self.lock_path} stayed taken for {timeout:.0f}s "
                                            "(another apply or remove is running)") from None
            yield

    def record(self, entries: list[HistoryEntry]) -> None:
        if not entries:
            return
        with closing(self._connect()) as conn, conn:
            for e in entries:
                conn.execute(
                    f"INSERT INTO {TABLE} (at, object, kind, family, version, action, classification, user, via, "
                    "fingerprint, diff) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (datetime.now(timezone.utc).isoformat(), e.object, e.kind, e.family, e.version, e.action,
                     e.classification, e.user, e.via, e.fingerprint, json.dumps(e.diff)))

    def _rows(self, name: str | None) -> list[tuple]:
        with closing(self._connect()) as conn:
            return conn.execute(
                f"SELECT at, object, kind, family, version, action, classification, user, via, fingerprint, diff "
                f"FROM {TABLE} WHERE ? IS NULL OR object = ? OR family = ? ORDER BY id", (name, name, name)).fetchall()
