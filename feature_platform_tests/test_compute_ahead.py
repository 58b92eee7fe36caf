"""A range run computes its next chunk of days on a thread while it writes the current one
(`FEATURE_PLATFORM_COMPUTE_AHEAD`, on by default): the same chunks in the same order, at most one ahead, a chunk's
failure raised where computing one chunk at a time raises it, and nothing left running once the run is over.
The range-failure tests (test_range_failures) run with it on; here, what the thread itself promises."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import pandas as pd
import pytest
from chat_activity.user_activity import SPEC

from feature_platform import runtime as runtime_module
from feature_platform.compute.chunks import DayChunk
from feature_platform.config import ConfigurationError, Settings
from feature_platform.demo.generator import generate_day
from feature_platform.platform import FeaturePlatform
from feature_platform.runtime import Runtime
from feature_platform.vocabulary import CREATED_TIMESTAMP
from feature_platform_tests.helpers import make_embedded_settings, write_sessions

FIRST = date(2026, 3, 2)
LAST = FIRST + timedelta(days=10)  # four chunks of 3 days (the last of 2)


class RecordingEngine:
    """An engine whose chunks name their days, recording when each computation starts and ends (and which chunks
    the caller held then), failing on `fail_on` and taking `pause` seconds a chunk."""

    def __init__(self, fail_on: date | None = None, pause: float = 0.0):
        self.fail_on, self.pause = fail_on, pause
        self.events: list[tuple[str, date]] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def compute_chunk(self, spec, days):
        with self.lock:
            self.events.append(("start", days[0]))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.pause)
        if self.fail_on is not None and self.fail_on in days:
            raise RuntimeError(f"chunk of {days[0]} failed (injected)")
        with self.lock:
            self.events.append(("end", days[0]))
        frame = pd.DataFrame({"day": days})
        return DayChunk(list(days), frame, pd.RangeIndex(len(days) + 1).to_numpy())


def runtime_with(tmp_path, engine: RecordingEngine, ahead: bool) -> Runtime:
    runtime = Runtime(make_embedded_settings(tmp_path).with_(compute_ahead=ahead))
    runtime.__dict__["engine"] = engine  # the cached engine, replaced
    return runtime


@pytest.fixture
def chunks_of_three(monkeypatch):
    monkeypatch.setattr(runtime_module, "COMPUTE_CHUNK_DAYS", 3)


@pytest.mark.parametrize("ahead", [True, False])
def test_the_same_chunks_come_in_day_order_whether_or_not_computed_ahead(tmp_path, chunks_of_three, ahead):
    engine = RecordingEngine()
    got = [chunk.days for chunk in runtime_with(tmp_path, engine, ahead).compute_chunks(SPEC, FIRST, LAST)]
    days = [FIRST + timedelta(days=i) for i in range(11)]
    assert got == [days[0:3], days[3:6], days[6:9], days[9:11]]
    assert engine.threads != {threading.current_thread().name} if ahead else engine.threads == {
        threading.current_thread().name}


def test_at_most_one_chunk_is_computed_ahead_of_the_caller(tmp_path, chunks_of_three):
    engine = RecordingEngine(pause=0.02)
    chunks = runtime_with(tmp_path, engine, True).compute_chunks(SPEC, FIRST, LAST)
    held = []
    for chunk in chunks:
        time.sleep(0.1)  # the caller's work on it: the next chunk is computed meanwhile, not the one after
        with engine.lock:
            started = [d for kind, d in engine.events if kind == "start"]
        held.append(chunk.days[0])
        # Started so far: the chunks handed over and at most the one after the last of them.
        assert len(started) <= len(held) + 1
        assert started[:len(held)] == held
    assert [d for kind, d in engine.events if kind == "end"] == held


@pytest.mark.parametrize("bad_day", range(11))
def test_a_chunk_that_fails_raises_after_the_chunks_before_it_and_nothing_after_it_is_computed(tmp_path,
                                                                                           chunks_of_three, bad_day):
    """Whichever chunk fails (the first, the last, one between), and however long the caller takes."""
    bad = FIRST + timedelta(days=bad_day)
    failing = bad_day // 3  # the failing chunk's position
    for ahead in (True, False):
        engine = RecordingEngine(fail_on=bad)
        got = []
        with pytest.raises(RuntimeError, match="injected"):
            for chunk in runtime_with(tmp_path, engine, ahead).compute_chunks(SPEC, FIRST, LAST):
                time.sleep(0.01 * (bad_day % 3))  # the caller's work: none, or more than a chunk's compute
                got.append(chunk.days[0])
        assert got == [FIRST + timedelta(days=3 * i) for i in range(failing)]
        assert [d for kind, d in engine.events if kind == "start"] == [
            FIRST + timedelta(days=3 * i) for i in range(failing + 1)]


def test_closing_the_chunks_waits_for_the_one_being_computed(tmp_path, chunks_of_three):
    """A chunk being computed when the caller stops is waited for, then dropped."""
    engine = RecordingEngine(pause=0.3)
    chunks = runtime_with(tmp_path, engine, True).compute_chunks(SPEC, FIRST, LAST)
    next(chunks)
    deadline = time.monotonic() + 10
    while len(engine.events) < 3 and time.monotonic() < deadline:  # until the second chunk is being computed
        time.sleep(0.005)
    assert engine.events[2] == ("start", FIRST + timedelta(days=3))
    chunks.close()  # as a failed run does before it restores anything
    assert [kind for kind, _ in engine.events] == ["start", "end", "start", "end"]  # waited for, then dropped
    assert not any(t.name.startswith("compute-user_activity") for t in threading.enumerate())


def test_the_setting_is_one_or_zero():
    assert Settings.from_env({}).compute_ahead is True
    assert Settings.from_env({"FEATURE_PLATFORM_COMPUTE_AHEAD": "0"}).compute_ahead is False
    assert Settings.from_env(Settings.from_env({"FEATURE_PLATFORM_COMPUTE_AHEAD": "0"}).as_env()).compute_ahead is False
    with pytest.raises(ConfigurationError, match="FEATURE_PLATFORM_COMPUTE_AHEAD must be 1 or 0, not 'yes'"):
        Settings.from_env({"FEATURE_PLATFORM_COMPUTE_AHEAD": "yes"})


def test_a_range_run_writes_the_same_partitions_computing_ahead_or_not(tmp_path, chunks_of_three):
    raw = pd.concat([generate_day(FIRST - timedelta(days=8) + timedelta(days=i), 40, seed=11) for i in range(19)],
                    ignore_index=True)
    tables = {}
    for ahead in (True, False):
        settings = make_embedded_settings(tmp_path / str(ahead)).with_(compute_ahead=ahead)
        write_sessions(settings.sessions_path, raw)
        platform = FeaturePlatform(settings)
        platform.materialize("user_activity", FIRST, LAST)
        tables[ahead] = platform.runtime.offline.read(SPEC, FIRST, LAST).drop(columns=[CREATED_TIMESTAMP])
        assert sorted(set(tables[ahead]["event_timestamp"].dt.date)) == [
            FIRST + timedelta(days=i + 1) for i in range(11)]
    pd.testing.assert_frame_equal(tables[True], tables[False])
