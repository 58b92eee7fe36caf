"""The file helpers every store uses: atomic replacement (util/atomic.py) and exclusive locks (util/locks.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from feature_platform.util import atomic
from feature_platform.util.atomic import atomic_write
from feature_platform.util.locks import LockTimeout, exclusive


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path, durable):
    path = tmp_path / "table.parquet"
    path.write_text("old")
    with atomic_write(path, durable=durable) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
        tmp.write_text("new")
        assert path.read_text() == "old"  # a reader sees the old file until the block ends
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_write_failing_half_way_keeps_the_old_file(tmp_path, durable):
    path = tmp_path / "table.parquet"
    path.write_text("old")
    with pytest.raises(OSError, match="disk full"), atomic_write(path, durable=durable) as tmp:
        tmp.write_text("half of the n")
        raise OSError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_a_durable_write_flushes_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    synced = []
    real_replace = atomic.os.replace
    monkeypatch.setattr(atomic, "_fsync", lambda p: synced.append("folder" if p.is_dir() else "file"))
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (synced.append("rename"), real_replace(a, b)))
    with atomic_write(tmp_path / "x") as tmp:
        tmp.write_text("new")
    assert synced == ["file", "rename", "folder"]
    synced.clear()
    with atomic_write(tmp_path / "x", durable=False) as tmp:
        tmp.write_text("newer")
    assert synced == ["rename"] and (tmp_path / "x").read_text() == "newer"


def test_atomic_write_of_a_new_file_failing_creates_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "new.parquet") as tmp:
        tmp.write_text("x")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


# The helpers alone, without the package's __init__ (which loads Feast and Dagster: seconds per process).
LEAF = """
import importlib.util, sys, types
package = types.ModuleType("feature_platform")
package.__path__ = list(importlib.util.find_spec("feature_platform").submodule_search_locations)
sys.modules["feature_platform"] = package
"""

KILLED_MID_WRITE = LEAF + """
import os, signal
from feature_platform.util.atomic import atomic_write
with atomic_write(sys.argv[1]) as tmp:
    with open(tmp, "w") as f:
        f.write("half of the n")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_killed_mid_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "table.parquet"
    path.write_text("old")
    child = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(path)], capture_output=True, timeout=120)
    assert child.returncode == -9, child.stderr
    assert path.read_text() == "old"
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].startswith(".table.parquet.")  # hidden: no reader lists it


HOLDER = LEAF + """
import time
from feature_platform.util.locks import exclusive
lock, log, name = sys.argv[1:4]
with exclusive(lock):
    with open(log, "a") as f:
        f.write(f"{name} in\\n")
    time.sleep(0.4)
    with open(log, "a") as f:
        f.write(f"{name} out\\n")
"""


def test_two_processes_contending_for_a_lock_take_turns(tmp_path):
    lock, log = tmp_path / "sub" / "x.lock", tmp_path / "log"
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(log), name]) for name in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    lines = log.read_text().split("\n")[:-1]
    assert len(lines) == 4
    first, second = lines[0].split()[0], lines[2].split()[0]
    assert lines == [f"{first} in", f"{first} out", f"{second} in", f"{second} out"] and first != second
    assert lock.exists()  # it stays: waiters share its inode


def test_threads_of_one_process_contend_too_and_a_timeout_raises(tmp_path):
    lock = tmp_path / "x.lock"
    taken, release = threading.Event(), threading.Event()

    def hold():
        with exclusive(lock):
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(30)
    started = time.monotonic()
    with pytest.raises(LockTimeout), exclusive(lock, timeout=0.2):
        pass
    assert time.monotonic() - started >= 0.2
    release.set()
    holder.join(30)
    with exclusive(lock, timeout=5):  # free again
        pass
