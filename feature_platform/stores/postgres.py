"""PostgreSQL connections with clear errors, and database creation on first use."""

from __future__ import annotations

import psycopg
from psycopg import sql

from feature_platform.config import Settings
from feature_platform.errors import StoreUnavailableError
from feature_platform.redact import redact, secrets_of


def connect(settings: Settings, db: str | None = None, **kwargs) -> psycopg.Connection:
    """Connect to `db` (default: the platform database), creating the database if it does not exist."""
    db = db or settings.pg_db
    try:
        return psycopg.connect(settings.pg_conninfo(db), **kwargs)
    except psycopg.OperationalError as exc:
        if f'database "{db}" does not exist' not in str(exc):
            raise StoreUnavailableError(redact(
                f"PostgreSQL at {settings.pg_host}:{settings.pg_port} (database {db!r}) is unreachable: {exc}".strip(),
                secrets_of(settings))) from exc
    ensure_database(settings, db)
    return psycopg.connect(settings.pg_conninfo(db), **kwargs)


def ensure_database(settings: Settings, db: str) -> None:
    try:
        with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
            if not exists:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
                except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    pass  # created concurrently (PostgreSQL reports the race as either)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(redact(
            f"PostgreSQL at {settings.pg_host}:{settings.pg_port} is unreachable: {exc}".strip(), secrets_of(settings)
        )) from exc

