"""Connection failures of any store (Redis, PostgreSQL, the SQL registry) as StoreUnavailableError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis
import sqlalchemy.exc

from feature_platform.config import Settings
from feature_platform.errors import StoreUnavailableError
from feature_platform.redact import redact, secrets_of


@contextmanager
def store_errors(settings: Settings, doing: str) -> Iterator[None]:
    """Turn connection failures of Redis, PostgreSQL or the SQL registry into StoreUnavailableError (redacted:
    a driver's message may quote a connection string)."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
            redis.exceptions.ClusterDownError, redis.exceptions.SlotNotCoveredError) as exc:  # the last two: a cluster
        raise StoreUnavailableError(redact(
            f"{doing}: {settings.redis_address} is unreachable: {exc}", secrets_of(settings)
        )) from exc
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        raise StoreUnavailableError(redact(
            f"{doing}: PostgreSQL at {settings.pg_host}:{settings.pg_port} is unreachable: {exc}", secrets_of(settings)
        )) from exc
