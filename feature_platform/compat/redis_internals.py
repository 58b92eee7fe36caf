"""redis-py's connection internals the platform uses, in one place: a raw connection of a client's pool, for
streaming commands packed by hiredis (or framed by the caller) and reading their replies afterwards (a pipeline without its bookkeeping).

Checked against redis 7.4.1 and hiredis 3.x (redis-py's parser): `ConnectionPool.get_connection()` with no
arguments, `Connection.send_packed_command(commands, check_health=...)`, `Connection.read_response()`,
`Connection.disconnect()` and `ConnectionPool.release(connection)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import hiredis
import redis


@contextmanager
def raw_connection(client: redis.Redis) -> Iterator[object]:
    """A connection of `client`'s pool for the `with` block, returned to the pool after it; on an error it is
    closed first, so replies left unread cannot reach the next command sent on it."""
    connection = client.connection_pool.get_connection()
    try:
        yield connection
    except BaseException:
        connection.disconnect()
        raise
    finally:
        client.connection_pool.release(connection)


def pack(args: tuple) -> bytes:
    """One command as RESP bytes."""
    return hiredis.pack_command(args)


def send(connection, args: tuple) -> None:
    """Send one command without waiting for its reply (read it later with `reply`, in order)."""
    send_packed(connection, pack(args))


def send_packed(connection, data: bytes) -> None:
    """Send commands already packed as RESP bytes, without waiting for their replies (see `reply`)."""
    connection.send_packed_command([data], check_health=False)


def reply(connection):
    """The reply of the oldest command sent on `connection` and not read yet."""
    return connection.read_response()


def call_packed(client: redis.Redis, data: bytes):
    """One command already packed as RESP bytes, sent on a connection of `client`'s pool and its reply read,
    without the client's per-command layers (its retries, its observability hooks): a 1-entity read's ~10 us of
    ~55. An error (a Redis error reply included) closes the connection and is raised as it is."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command([data], check_health=False)
        response = connection.read_response()
    except BaseException:
        connection.disconnect()
        pool.release(connection)
        raise
    pool.release(connection)
    return response
