"""PostgreSQL lost in the middle of an offline partition write, over a real connection: a TCP proxy in front of
the real server forwards every connection faithfully and cuts the one carrying the partition's COPY at a
chosen point of its transaction. The partition keeps its old rows exactly, the error names the view and
partition (never a password), and a re-run writes exactly what a clean run writes. Also the Parquet store
on a real write error (the file-size limit hit mid-file): the old partition file is kept, no temp file left."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import psycopg
import pytest
from chat_activity.user_activity import SPEC

from feature_platform.compute.window_aggregate import aggregate_day
from feature_platform.config import OFFLINE_SCHEMA, Settings
from feature_platform.demo.generator import generate_day
from feature_platform.errors import MaterializationError, StoreUnavailableError
from feature_platform.platform import FeaturePlatform
from feature_platform.stores.offline_parquet import ParquetOfflineStore
from feature_platform.stores.offline_postgres import PostgresOfflineStore
from feature_platform.vocabulary import CREATED_TIMESTAMP, day_end
from feature_platform_tests.helpers import services_settings_in, write_sessions

D = date(2026, 3, 10)
USERS = 2000  # ~125 KB of COPY data per partition: a cut "mid-data" lands after at least one full CopyData
LATE_COMMIT_SEC = 2.0  # how long a "commit-late" COMMIT waits before it reaches the server
SECRET = "s3cret-not-in-errors"  # sent as the password (trust auth ignores it): must never appear in an error
_SSL_OR_GSS_REQUEST = (80877103, 80877104)


class PgProxy:
    """A loopback TCP proxy to PostgreSQL. Every connection is forwarded byte for byte, except the one carrying
    the `nth` COPY into `offline.<view>` once armed: that one is stopped at `point` of its transaction,
    "copy" (the DELETE done, the COPY not sent), "data" (half-way through the second CopyData message, or
    before CopyDone when there is only one), "commit" (all rows sent, COMMIT not), "commit-sent" (COMMIT
    forwarded, its answer never delivered: the server commits, the client cannot know) or "commit-late" (the
    client is cut as it sends COMMIT, which reaches the server LATE_COMMIT_SEC later: the server commits after
    the client has moved on). `action` "cut" closes
    both sides (the server is gone for the client); "hold" stops forwarding and waits for the client to die
    (a SIGKILL), then closes the server side."""

    def __init__(self, view: str, upstream: tuple[str, int] = ("127.0.0.1", 5432)):
        self.upstream = upstream
        self.marker = f'COPY "{OFFLINE_SCHEMA}"."{view}"'.encode()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.fault: tuple[int, str, str] | None = None
        self.copies = 0
        self.stopped_at: str | None = None  # where the target connection was stopped
        self.reached = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, nth: int, point: str, action: str = "cut") -> None:
        with self._lock:
            self.fault, self.copies, self.stopped_at = (nth, point, action), 0, None
            self.reached.clear()

    def disarm(self) -> None:
        with self._lock:
            self.fault = None

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                _shut(s)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for s in (client, server):  # as libpq does: no Nagle delay on the many small protocol messages
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            # Set once the target connection is stopped: nothing more of the server's reaches the client (a
            # COMMIT's answer must never arrive, however fast the server replies).
            muted = threading.Event()
            threading.Thread(target=self._down, args=(server, client, muted), daemon=True).start()
            threading.Thread(target=self._up, args=(client, server, muted), daemon=True).start()

    @staticmethod
    def _down(server: socket.socket, client: socket.socket, muted: threading.Event) -> None:
        try:
            while (data := server.recv(65536)) and not muted.is_set():
                client.sendall(data)
        except OSError:
            pass
        _shut(client, server)

    def _up(self, client: socket.socket, server: socket.socket, muted: threading.Event) -> None:
        """Client to server, a whole frontend message at a time, watching for the target write."""
        buf, typed, target, data_messages = bytearray(), False, None, 0
        try:
            while data := client.recv(65536):
                buf += data
                while (msg := _message(buf, typed)) is not None:
                    if not typed:  # startup: SSLRequest/GSSENCRequest (answered "N"), then the startup packet
                        typed = int.from_bytes(msg[4:8], "big") not in _SSL_OR_GSS_REQUEST
                        server.sendall(msg)
                        continue
                    kind, is_copy = msg[:1], msg[:1] in (b"Q", b"P") and self.marker in msg
                    if is_copy:
                        with self._lock:
                            self.copies += 1
                            if self.fault and self.copies == self.fault[0]:
                                target = self.fault
                    point = target[1] if target else None
                    data_messages += point == "data" and kind == b"d"
                    if point == "copy" and is_copy:
                        return self._stop(client, server, target, "copy", b"")
                    if point == "data" and data_messages == 2:
                        return self._stop(client, server, target, "data", msg[:len(msg) // 2])
                    if point == "data" and kind == b"c":
                        return self._stop(client, server, target, "copy-done", b"")
                    if point in ("commit", "commit-sent", "commit-late") and kind == b"Q" and msg[5:].startswith(b"COMMIT"):
                        muted.set()
                        if point == "commit-late":
                            return self._commit_late(client, server, msg)
                        return self._stop(client, server, target, point, msg if point == "commit-sent" else b"")
                    server.sendall(msg)
        except OSError:
            pass
        _shut(client, server)

    def _commit_late(self, client: socket.socket, server: socket.socket, commit: bytes) -> None:
        _shut(client)
        self.stopped_at = "commit-late"
        self.reached.set()
        time.sleep(LATE_COMMIT_SEC)
        try:
            server.sendall(commit)
            server.recv(65536)  # the server's answer: committed
        except OSError:
            pass
        _shut(server)

    def _stop(self, client: socket.socket, server: socket.socket, target, where: str, partial: bytes) -> None:
        try:
            server.sendall(partial)
            self.stopped_at = where
            if target[2] == "hold":
                self.reached.set()
                while client.recv(65536):  # the client waits for an answer that never comes, until it dies
                    pass
        except OSError:
            pass
        _shut(client, server)
        self.reached.set()


def _message(buf: bytearray, typed: bool) -> bytes | None:
    """Pop the next complete frontend message off `buf` (startup messages have no type byte)."""
    head = 5 if typed else 4
    if len(buf) < head:
        return None
    size = int.from_bytes(buf[head - 4:head], "big") + (1 if typed else 0)
    if len(buf) < size:
        return None
    msg = bytes(buf[:size])
    del buf[:size]
    return msg


def _shut(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def wait_for_writers_gone(settings: Settings, timeout: float = 60) -> None:
    """Wait until no backend of the platform database is inside a statement or transaction (the server has
    noticed the lost client and rolled its transaction back). A wait for a condition, not a timing assertion."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        while True:
            busy = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
                                "AND state <> 'idle'", (settings.pg_db,)).fetchone()[0]
            if not busy:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{busy} backend(s) of {settings.pg_db} still busy after the client was lost")
            time.sleep(0.05)


@pytest.fixture
def no_tls(monkeypatch):
    """The proxy reads the protocol: libpq must not negotiate TLS or GSS encryption through it."""
    monkeypatch.setenv("PGSSLMODE", "disable")
    monkeypatch.setenv("PGGSSENCMODE", "disable")


@pytest.fixture
def proxy(no_tls):
    p = PgProxy(SPEC.name)
    yield p
    p.close()


def raw_sessions(last: date, seed: int, days: int = 11) -> pd.DataFrame:
    return pd.concat([generate_day(last - timedelta(days=i), USERS, seed=seed) for i in range(days)], ignore_index=True)


def stamp(day: date) -> pd.Timestamp:
    return pd.Timestamp(day_end(day))


def partition_rows(raw: pd.DataFrame, day: date) -> pd.DataFrame:
    rows = aggregate_day(SPEC, raw, day)
    rows[CREATED_TIMESTAMP] = pd.Timestamp(datetime(2026, 3, 20, tzinfo=timezone.utc))
    return rows


@pytest.mark.services
@pytest.mark.parametrize("point", ["copy", "data", "commit", "commit-sent"])
def test_postgres_lost_mid_partition_write_keeps_the_old_rows(tmp_path, proxy, point):
    old_raw, new_raw = raw_sessions(D, seed=1), raw_sessions(D, seed=2)
    with services_settings_in(tmp_path) as settings:
        direct = PostgresOfflineStore(settings)
        for day in (D - timedelta(days=1), D):
            direct.write_partition(SPEC, day, partition_rows(old_raw, day))
        before = direct.read(SPEC)
        faulty = settings.with_(pg_port=proxy.port, pg_password=SECRET)
        proxy.arm(1, point)
        with pytest.raises(StoreUnavailableError) as failed:
            PostgresOfflineStore(faulty).write_partition(SPEC, D, partition_rows(new_raw, D))
        assert proxy.stopped_at == point  # the connection really was cut there
        message = str(failed.value)
        assert f"writing partition {D} of 'user_activity' offline" in message
        assert f"PostgreSQL at 127.0.0.1:{proxy.port} is unreachable" in message
        assert SECRET not in message and SECRET not in repr(failed.value.__cause__)

        wait_for_writers_gone(settings)
        after_fault = direct.read(SPEC)
        if point != "commit-sent":
            pd.testing.assert_frame_equal(after_fault, before)  # old rows exactly: nothing deleted or added

        proxy.disarm()
        PostgresOfflineStore(faulty).write_partition(SPEC, D, partition_rows(new_raw, D))  # the re-run
        rerun = direct.read(SPEC)
        direct.write_partition(SPEC, D, partition_rows(new_raw, D))  # a clean write of the same rows
        pd.testing.assert_frame_equal(rerun, direct.read(SPEC))
        if point == "commit-sent":
            pd.testing.assert_frame_equal(after_fault, rerun)  # committed whole before the answer was lost
        other = rerun["event_timestamp"] != stamp(D)
        pd.testing.assert_frame_equal(rerun[other], before[before["event_timestamp"] != stamp(D)])  # untouched
        new = rerun[~other].reset_index(drop=True)
        want = partition_rows(new_raw, D)[new.columns]
        assert len(new) == len(want) > 1000 and not want.equals(partition_rows(old_raw, D)[new.columns])
        pd.testing.assert_frame_equal(new, want, check_dtype=False)


@pytest.mark.services
def test_postgres_lost_during_a_backfill_keeps_whole_partitions_and_a_rerun_completes(tmp_path, proxy):
    first, last = D - timedelta(days=2), D
    days = [first + timedelta(days=i) for i in range(3)]
    old_raw, new_raw = raw_sessions(last, seed=1), raw_sessions(last, seed=2)
    cols = ["user_id", *SPEC.feature_names, "event_timestamp"]
    with services_settings_in(tmp_path) as settings:
        write_sessions(settings.sessions_path, old_raw)
        FeaturePlatform(settings).materialize("user_activity", first, last)
        before = FeaturePlatform(settings).offline_table("user_activity")

        write_sessions(settings.sessions_path, new_raw)  # corrected raw data: the re-materialization differs
        proxy.arm(2, "data")  # the second partition's COPY; everything else (Dagster, the registry) flows
        platform = FeaturePlatform(settings.with_(pg_port=proxy.port))
        with pytest.raises(MaterializationError) as failed:
            platform.materialize("user_activity", first, last)
        assert proxy.stopped_at == "data"
        assert f"StoreUnavailableError: writing partition {days[1]} of 'user_activity' offline" in str(failed.value)
        wait_for_writers_gone(settings)

        after = FeaturePlatform(settings).offline_table("user_activity")
        for day, raw in zip(days, (new_raw, old_raw, old_raw)):  # day 1 replaced whole; days 2 and 3 untouched
            got = after[after["event_timestamp"] == stamp(day)].reset_index(drop=True)
            want = aggregate_day(SPEC, raw, day)
            pd.testing.assert_frame_equal(got[cols], want[cols], check_dtype=False)
        kept = before[before["event_timestamp"] >= stamp(days[1])].reset_index(drop=True)
        pd.testing.assert_frame_equal(after[after["event_timestamp"] >= stamp(days[1])].reset_index(drop=True), kept)

        proxy.disarm()
        platform.materialize("user_activity", first, last)  # the re-run, over the same proxy
        table = FeaturePlatform(settings).offline_table("user_activity")
        want = pd.concat([aggregate_day(SPEC, new_raw, day) for day in days], ignore_index=True)
        assert not table.duplicated(["user_id", "event_timestamp"]).any()
        pd.testing.assert_frame_equal(table[cols], want[cols], check_dtype=False)
        # Online: the last day's values (an entity the corrected data no longer has on the last day keeps its
        # newer value from the first run: newest-wins, as without any fault).
        newest = want[want["event_timestamp"] == stamp(last)]
        got = FeaturePlatform(settings).online_features([f"user_activity:{f}" for f in SPEC.feature_names],
                                                        [{"user_id": int(u)} for u in newest["user_id"]],
                                                        now=day_end(last) + timedelta(hours=1))
        assert got["total_tokens_7d"].astype("int64").tolist() == newest["total_tokens_7d"].tolist()


# Imports the store without the package's __init__ (Dagster, Feast: seconds of imports it does not need).
_WRITE_ONE_PARTITION = """
import importlib.util, sys, types
package = types.ModuleType("feature_platform")
package.__path__ = list(importlib.util.find_spec("feature_platform").submodule_search_locations)
sys.modules["feature_platform"] = package
from datetime import date
from pathlib import Path
import pandas as pd
from feature_platform.config import EXAMPLE_REPO
sys.path.insert(0, str(EXAMPLE_REPO.parent))  # the example repository, as the loader imports it
from chat_activity.user_activity import SPEC
from feature_platform.stores.offline_parquet import ParquetOfflineStore
ParquetOfflineStore(Path(sys.argv[1])).write_partition(SPEC, date.fromisoformat(sys.argv[2]), pd.read_pickle(sys.argv[3]))
"""


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past `limit` bytes fail with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return apply


def test_parquet_write_error_mid_file_keeps_the_old_partition(tmp_path):
    root = tmp_path / "offline"
    store = ParquetOfflineStore(root)
    old_raw, new_raw = raw_sessions(D, seed=1), raw_sessions(D, seed=2)
    store.write_partition(SPEC, D, partition_rows(old_raw, D))
    before = store.read(SPEC)
    pd.to_pickle(partition_rows(new_raw, D), tmp_path / "rows.pkl")
    # A real write failure half-way through the temp file (what a full disk does), in a child process.
    child = subprocess.run([sys.executable, "-c", _WRITE_ONE_PARTITION, str(root), D.isoformat(), str(tmp_path / "rows.pkl")],
                           env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}, preexec_fn=_file_size_limit(16_384),
                           capture_output=True, text=True, timeout=120)
    assert child.returncode != 0 and "File too large" in child.stderr, child.stderr[-2000:]
    assert sorted(p.name for p in (root / SPEC.name).iterdir()) == [f"{D}.parquet"]  # no temp file left behind
    pd.testing.assert_frame_equal(store.read(SPEC), before)

    store.write_partition(SPEC, D, partition_rows(new_raw, D))  # the re-run
    got = store.read(SPEC)
    want = partition_rows(new_raw, D)[got.columns]
    pd.testing.assert_frame_equal(got, want.sort_values("user_id").reset_index(drop=True), check_dtype=False)
