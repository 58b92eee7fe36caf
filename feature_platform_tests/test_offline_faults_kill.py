"""A backfill process killed hard (SIGKILL) in the middle of a partition's offline write, on both profiles:
re-running the range in a fresh process leaves the offline table and the online values identical (rows,
dtypes, counts) to an uninterrupted run of the same range in another home and database.

The kill is deterministic: embedded, the worker stops once the partition's temp file is written and before
its rename (a wrapper of the Parquet writer inside the worker, inert elsewhere); services, the TCP proxy of
test_offline_faults holds the partition's COPY half-way (the backend is seen inside the COPY) before the kill.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import pandas as pd
import psycopg
from chat_activity.user_activity import SPEC

from feature_platform.config import Settings
from feature_platform.demo.generator import generate_day
from feature_platform.platform import FeaturePlatform
from feature_platform.stores import offline_parquet
from feature_platform.vocabulary import CREATED_TIMESTAMP, day_end
from feature_platform_tests.helpers import settings_of, write_sessions
from feature_platform_tests.test_offline_faults import PgProxy, wait_for_writers_gone

FIRST, LAST = date(2026, 3, 1), date(2026, 3, 6)
DAYS_PER_RUN = 3  # two runs: the first completes (offline and online), the second is killed
KILLED_WRITE = 5  # the 5th partition write: 2026-03-05, the second run's second partition
KILLED_DAY = FIRST + timedelta(days=KILLED_WRITE - 1)


@lru_cache(maxsize=1)
def _forkserver() -> mp.context.BaseContext:
    """Workers forked from a server that imported the platform once (a spawned worker would spend seconds
    importing Dagster and Feast). Each is still a fresh process: no platform object, connection or cache."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "feature_platform.definitions"])
    return ctx


def _backfill(env: dict[str, str], directory: Path, stop_at_write: int, open_storage: bool) -> None:
    """A worker: waits for its go file, then backfills; with `open_storage`, Dagster's storage (the slow part
    of a first run) is opened (created) before the wait."""
    import warnings

    warnings.filterwarnings("ignore")
    log = os.open(directory / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.update(env)
    if stop_at_write:  # the n-th Parquet partition write stops after its temp file is written, before the rename
        real, count = offline_parquet.pq.write_table, [0]

        def write_table(table, where, **kwargs):
            real(table, where, **kwargs)
            count[0] += 1
            if count[0] == stop_at_write:
                (directory / "stopped").write_text(str(where))
                time.sleep(3600)

        offline_parquet.pq = types.SimpleNamespace(write_table=write_table)
    platform = FeaturePlatform(Settings.from_env(env))
    if open_storage:
        platform.instance()
    while not (directory / "go").exists():
        time.sleep(0.02)
    platform.materialize("user_activity", FIRST, LAST)


class Worker:
    def __init__(self, directory: Path, env: dict[str, str], stop_at_write: int = 0, open_storage: bool = False):
        directory.mkdir(parents=True)
        self.directory = directory
        env = env | {"PGSSLMODE": "disable", "PGGSSENCMODE": "disable"}  # the proxy reads the protocol
        self.proc = _forkserver().Process(target=_backfill, args=(env, directory, stop_at_write, open_storage))
        # Started in the background: the first start waits for the fork server's imports, which overlap the
        # reference run this way.
        self._starting = threading.Thread(target=self.proc.start, daemon=True)
        self._starting.start()

    def _started(self) -> mp.Process:
        self._starting.join()
        return self.proc

    def go(self) -> None:
        (self.directory / "go").touch()

    def wait_for(self, condition, what: str, timeout: float = 300) -> None:
        """Wait until `condition()` holds, failing early if the worker exits (a wait, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if not self._started().is_alive():
                raise AssertionError(f"worker exited ({self.proc.exitcode}) before {what}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker never reached {what}:\n{self.output()}")
            time.sleep(0.02)

    def kill(self) -> None:
        self._started().kill()
        self.proc.join(timeout=60)
        assert self.proc.exitcode == -signal.SIGKILL

    def finish(self) -> None:
        self._started().join(timeout=300)
        assert self.proc.exitcode == 0, self.output()

    def output(self) -> str:
        log = self.directory / "worker.log"
        return log.read_text()[-4000:] if log.exists() else ""

    def stop(self) -> None:
        if self._started().is_alive():
            self.proc.kill()
            self.proc.join()


@contextmanager
def profile_settings(profile: str, root: Path) -> Iterator[Settings]:
    with settings_of(profile, root) as settings:
        yield settings.with_(backfill_days_per_run=DAYS_PER_RUN)


def worker_env(settings: Settings) -> dict[str, str]:
    return settings.as_env() | {"FEATURE_PLATFORM_SESSIONS_PATH": str(settings.sessions_path)}


def snapshot(settings: Settings, users) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The offline table and every user's online vector (with status and feature timestamps)."""
    platform = FeaturePlatform(settings)
    online = platform.online_features([f"user_activity:{f}" for f in SPEC.feature_names],
                                      [{"user_id": int(u)} for u in users], with_metadata=True,
                                      now=day_end(LAST) + timedelta(hours=1))
    return platform.offline_table("user_activity"), online


def copy_in_progress(settings: Settings) -> bool:
    with psycopg.connect(Settings.from_env({}).pg_conninfo("postgres"), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                            "AND query LIKE 'COPY %%'", (settings.pg_db,)).fetchone()[0] == 1


def test_a_backfill_killed_mid_partition_then_rerun_equals_an_uninterrupted_run(tmp_path, profile):
    raw = pd.concat([generate_day(FIRST + timedelta(days=i), 300, seed=5) for i in range(-8, 6)], ignore_index=True)
    proxy = PgProxy(SPEC.name) if profile == "services" else None
    workers: list[Worker] = []
    try:
        with profile_settings(profile, tmp_path / "run") as settings:
            write_sessions(settings.sessions_path, raw)
            killed_env = worker_env(settings)
            if proxy:
                killed_env["FEATURE_PLATFORM_PG_PORT"] = str(proxy.port)  # all its PostgreSQL traffic via the proxy
                proxy.arm(KILLED_WRITE, "data", action="hold")
            killed = Worker(tmp_path / "killed", killed_env, stop_at_write=0 if proxy else KILLED_WRITE, open_storage=True)
            workers.append(killed)

            # The uninterrupted run, while the fork server imports and the worker opens its storage (it waits for
            # its go file: nothing of the run under test is written before the reference is read and its Redis
            # database flushed).
            with profile_settings(profile, tmp_path / "reference") as reference:
                reference = reference.with_(backfill_days_per_run=92)  # the whole range in one run
                write_sessions(reference.sessions_path, raw)
                FeaturePlatform(reference).materialize("user_activity", FIRST, LAST)
                users = sorted(raw["user_id"].unique())
                want_offline, want_online = snapshot(reference, users)

            # A fresh process; it touches nothing until told to go (a storage being created under the running
            # worker could fail it).
            rerun = Worker(tmp_path / "rerun", worker_env(settings))
            workers.append(rerun)
            killed.go()
            offline = settings.offline_dir / SPEC.name
            if proxy:
                killed.wait_for(proxy.reached.is_set, f"the COPY of partition {KILLED_DAY}")
                assert proxy.stopped_at in ("data", "copy-done")  # rows sent, the COPY not finished
                killed.wait_for(lambda: copy_in_progress(settings), "a backend inside the COPY")
            else:
                killed.wait_for((killed.directory / "stopped").exists, f"the write of partition {KILLED_DAY}")
                assert list(offline.glob(f".{KILLED_DAY}.*.tmp")) and not (offline / f"{KILLED_DAY}.parquet").exists()
            killed.kill()
            if proxy:
                wait_for_writers_gone(settings)  # the server saw the client go and rolled the COPY back

            # Killed with the first run done (offline and online) and the second half-way.
            partial_online = snapshot(settings, users)[1]
            written = [FIRST + timedelta(days=i) for i in range(KILLED_WRITE - 1)]
            assert FeaturePlatform(settings).runtime.offline.partitions(SPEC) == written
            assert (partial_online["sessions_7d__event_timestamp"] == pd.Timestamp(day_end(written[2]))).sum() > 100
            rerun.go()
            rerun.finish()
            got_offline, got_online = snapshot(settings, users)
    finally:
        for w in workers:
            w.stop()
        if proxy:
            proxy.close()

    assert len(got_offline) == len(want_offline) > 1000
    assert got_offline.dtypes.to_dict() == want_offline.dtypes.to_dict()
    # Everything but the write time of the rows.
    pd.testing.assert_frame_equal(got_offline.drop(columns=[CREATED_TIMESTAMP]), want_offline.drop(columns=[CREATED_TIMESTAMP]))
    assert (got_online["sessions_7d__status"] == "present").sum() > 100
    pd.testing.assert_frame_equal(got_online, want_online)
