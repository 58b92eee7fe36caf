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

Storing one event takes one transaction per shard it writes (the run's file, the index), committed before
`store_event` returns: Dagster's own opens up to three (a check evaluation: its row in the run's file, its copy
in the index, then the check's execution row), each with its commit and its fsync. A batch of events is one
transaction per shard for the whole batch: Dagster hands a run's materializations of a range (one per partition)
and its planned events to `store_event_batch` when `DAGSTER_EVENT_BATCH_SIZE` is set, which this storage sets
(unless the environment does) when it is created; Dagster's SQLite storage would store them one at a time. A
batch is stored once its last event is logged (Dagster buffers it in memory: the events of one output, logged
in one loop). A 92-partition range run: 1,256 commits with Dagster's storage, 607 with this one.
A failure rolls back the event's (or batch's) writes in every shard, where Dagster's would keep those
committed before it. `has_table` remembers the tables it found (tables are added by migrations, never
dropped), where Dagster's opens a new engine on every call: twice per check evaluation.

On an upgrade, check that `DagsterSqliteStorage.__init__` sets `_event_log_storage` from `base_dir` as
`<base_dir>/history/runs/`, and that `SqliteEventLogStorage` still has `_connect(shard)` (a context manager
yielding a connection inside a transaction), `_initdb(engine)`, `_initialized_dbs`, `_db_lock`,
`conn_string_for_shard`, `has_table(name)`, `store_event(event)`, `store_event_batch(events)` and `dispose`,
and that `store_event` reaches its shards only through `_connect` (`run_connection`, `index_connection`,
`index_transaction`) and `has_table`. `feature_platform_tests/test_deploy_config.py` loads the shipped file;
the backfill and killed-run tests run on it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from sqlalchemy.pool import NullPool, QueuePool

__all__ = ["STORAGE_CLASS", "STORAGE_MODULE", "KeptConnectionsSqliteStorage"]

STORAGE_MODULE = __name__
STORAGE_CLASS = "KeptConnectionsSqliteStorage"
EVENT_BATCH_SIZE = 1000  # events per `store_event_batch` (Dagster's opt-in; off by default)
KEPT_SHARDS = 4  # engines kept open: the index shard and the runs being written (each run has its own file)
_BUSY_TIMEOUT_SEC = 30  # wait for another process's write lock, as Dagster's own storage does


class _KeptConnectionsEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, object] = OrderedDict()
        self._tables: set[str] = set()  # tables `has_table` found
        self._open = threading.local()  # `.shards`: shard -> (connection, transaction) of this thread's event
        super().__init__(base_dir, inst_data=inst_data)

    def store_event(self, event) -> None:
        with self._one_transaction_per_shard():
            super().store_event(event)

    def store_event_batch(self, events: Sequence) -> None:
        with self._one_transaction_per_shard():
            for event in events:
                super().store_event(event)

    @contextmanager
    def _one_transaction_per_shard(self) -> Iterator[None]:
        """Within it, every `_connect(shard)` of this thread shares one connection and transaction per shard,
        committed (in the order opened) when it ends, or all rolled back on an error."""
        if getattr(self._open, "shards", None) is not None:  # nested: the outer one commits
            yield
            return
        with self._db_lock:
            self._open.shards = shards = {}
            try:
                yield
                for _conn, transaction in shards.values():
                    transaction.commit()
            finally:
                self._open.shards = None
                for conn, transaction in shards.values():
                    if transaction.is_active:  # not committed: an error above
                        transaction.rollback()
                    conn.close()

    @contextmanager
    def _connect(self, shard: str) -> Iterator:
        shards = getattr(self._open, "shards", None)
        if shards is not None:  # inside an event's transactions (its thread holds `_db_lock`)
            if shard not in shards:
                conn = self._engine(shard).connect()
                shards[shard] = (conn, conn.begin())
            yield shards[shard][0]
            return
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        if table_name in self._tables:
            return True
        # Dagster's own check (a new engine): it is called while `_connect` holds the index shard and `_db_lock`.
        found = super().has_table(table_name)
        if found:
            self._tables.add(table_name)
        return found

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
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))  # read by Dagster at each event
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage.dispose()
        self._event_log_storage = _KeptConnectionsEventLogStorage(os.path.join(base_dir, "history", "runs", ""))

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)
