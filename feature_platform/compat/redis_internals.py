"""redis-py's connection internals the platform uses, in one place: a raw connection of a client's pool, for
streaming commands packed by hiredis (or framed by the caller) and reading their replies afterwards (a pipeline without its bookkeeping).

Checked against redis 7.4.1 and hiredis 3.x (redis-py's parser): `ConnectionPool.get_connection()` with no
arguments, `Connection.send_packed_command(commands, check_health=...)` (which connects a disconnected
connection), `Connection.read_response()`, `Connection.disconnect()` and `ConnectionPool.release(connection)`
(which ignores a connection it does not hold, e.g. after the pool was reset in a forked child).
"""

from __future__ import annotations

import os
import threading
import weakref
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
    """One command already packed as RESP bytes, sent on the calling thread's kept connection of `client`'s pool
    (`_kept_connection`) and its reply read, without the client's per-command layers (its retries, its
    observability hooks) nor a checkout from the pool per call (its lock, its check for unread data, its
    counters): a 1-entity read's ~30 us of ~120. An error (a Redis error reply included) closes the connection,
    gives it back to the pool (the thread's next call checks out another) and is raised as it is: a reply left
    unread can never reach a later command."""
    pool = client.connection_pool
    connection = _kept_connection(pool)
    try:
        connection.send_packed_command([data], check_health=False)
        return connection.read_response()
    except BaseException:
        _drop_kept(pool)
        raise


class _Kept:
    """A connection a thread checked out of a pool and keeps. Given back to the pool after an error or when the
    thread's local data goes (the thread ended); closed if the pool itself is gone (held weakly: a client the
    caller dropped is not kept alive by the threads that read through it)."""

    __slots__ = ("pool", "connection", "pid")

    def __init__(self, pool):
        self.pool, self.connection, self.pid = weakref.ref(pool), pool.get_connection(), os.getpid()

    def give_back(self, disconnect: bool = True) -> None:
        """Return the connection to its pool (closed first unless `disconnect` is False: idle, whole replies read,
        reusable as it is); closed if the pool is gone. A forked child never touches its parent's socket."""
        connection, self.connection = self.connection, None
        if connection is None or self.pid != os.getpid():
            return
        pool = self.pool()
        if disconnect or pool is None:
            connection.disconnect()
        if pool is not None:
            pool.release(connection)

    def __del__(self) -> None:
        try:
            self.give_back(disconnect=False)
        except Exception:  # noqa: BLE001 - at interpreter exit the pool or the socket module may be gone already
            pass


_kept = threading.local()  # .by_pool: {pool (weakly): _Kept} of the thread


def _kept_connection(pool):
    by_pool = getattr(_kept, "by_pool", None)
    if by_pool is None:
        by_pool = _kept.by_pool = weakref.WeakKeyDictionary()
    kept = by_pool.get(pool)
    if kept is None or kept.pid != os.getpid():  # first use in this thread, or in a forked child (its own, new)
        kept = by_pool[pool] = _Kept(pool)
    return kept.connection


def _drop_kept(pool) -> None:
    kept = getattr(_kept, "by_pool", {}).pop(pool, None)
    if kept is not None:
        kept.give_back()
