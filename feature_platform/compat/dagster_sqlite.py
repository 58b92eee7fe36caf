"""Dagster's SQLite storage (the embedded profile) with the event log's connections kept open.

Checked against dagster 1.13.27 (pinned in pyproject.toml). Dagster's `SqliteEventLogStorage._connect(shard)`
creates an engine and a connection for every read and write (`NullPool`): each stored event pays a connect, a
statement compiled without a cache and, as the last connection to a WAL database closes, a checkpoint with its
fsyncs. A range run stores four events per partition (a materialization and three checks), ~30 ms each on a
busy disk: for a year of daily partitions, more than the computation. Here each shard's engine is kept (the
index shard and the few runs most recently written), with one connection, so an event costs its statements and
its commit (still synchronous: SQLite's default durability is kept). Other processes (the daemon, the web
server, a concurrent run) share the files as before: SQLite locks them, and every access is still one
transaction under the storage's `_db_lock`.

On an upgrade, check that `DagsterSqliteStorage.__init__` sets `_event_log_storage` from `base_dir` as
`<base_dir>/history/runs/`, and that `SqliteEventLogStorage` still has `_connect(shard)` (a context manager
yielding a connection inside a transaction), `_initdb(engine)`, `_initialized_dbs`, `_db_lock`,
`conn_string_for_shard` and `dispose`. `feature_platform_tests/test_deploy_config.py` loads the shipped file;
the backfill and killed-run tests run on it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from sqlalchemy.pool import NullPool, QueuePool

__all__ = ["STORAGE_CLASS", "STORAGE_MODULE", "KeptConnectionsSqliteStorage"]

STORAGE_MODULE = __name__
STORAGE_CLASS = "KeptConnectionsSqliteStorage"
KEPT_SHARDS = 4  # engines kept open: the index shard and the runs being written (each run has its own file)
_BUSY_TIMEOUT_SEC = 30  # wait for another process's write lock, as Dagster's own storage does


class _KeptConnectionsEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, object] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator:
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str):
        engine = self._engines.pop(shard, None)
        if engine is None:
            url = self.conn_string_for_shard(shard)
            if shard not in self._initialized_dbs:  # as Dagster does it: `_initdb` opens nested connections
                init = create_engine(url, poolclass=NullPool, connect_args={"timeout": _BUSY_TIMEOUT_SEC})
                self._initdb(init)
                init.dispose()
                self._initialized_dbs.add(shard)
            # One connection kept, used under `_db_lock` by whichever thread holds it (hence check_same_thread off).
            engine = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0,
                                   connect_args={"timeout": _BUSY_TIMEOUT_SEC, "check_same_thread": False})
            while len(self._engines) >= KEPT_SHARDS:
                self._engines.popitem(last=False)[1].dispose()
        self._engines[shard] = engine  # most recently used last
        return engine

    def dispose(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
        super().dispose()


class KeptConnectionsSqliteStorage(DagsterSqliteStorage):
    """`storage: sqlite:` of dagster.yaml, but whose event log keeps its connections (see the module's doc)."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage.dispose()
        self._event_log_storage = _KeptConnectionsEventLogStorage(os.path.join(base_dir, "history", "runs", ""))

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)
