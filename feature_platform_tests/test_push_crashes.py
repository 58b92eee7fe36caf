"""The push consumer crashing at every step, on both transports (landing directory, Redis Stream + group).

A crash is an exception raised at a boundary of the real code path (the transport's read or ack, the
offline or online write), or a real SIGKILL of a consumer process there. After it, the normal recovery
(`ingest_pending`, or the sensor's next tick) must leave every pushed event offline exactly once, the
newest value per entity online, each rejected row dead-lettered once, and nothing pending.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import warnings
from datetime import timedelta
from functools import lru_cache

import dagster as dg
import pandas as pd
import pytest
from chat_activity.user_realtime import SPEC

import feature_platform as fp
from feature_platform.config import Settings
from feature_platform.definitions import build_assets, build_definitions
from feature_platform.defs import push_views
from feature_platform.defs.resources import resources_for
from feature_platform.ingest import transport_for
from feature_platform.stores.landing import LandingDirectory
from feature_platform.stores.online import OnlineStore
from feature_platform_tests.helpers import clock, event_batch

SOURCE = "user_realtime_events"
SENSOR = f"{SOURCE}_sensor"
FEATURES = [f"user_realtime:{f}" for f in SPEC.feature_names]
pytestmark = pytest.mark.usefixtures("fresh_clock")

# (user_id, seconds_ago, messages, tokens, minutes_ago); messages < 0 is rejected by the schema.
FIRST = [(1, 300, 1, 10, 5.0), (2, 290, 2, 20, 4.0)]
CRASHED = [(1, 100, 3, 30, 1.0), (3, 95, 4, 40, 1.5), (4, 90, -1, 0, 0.0)]  # the batch being processed at the crash
LAST = [(1, 200, 5, 50, 3.0), (2, 80, 6, 60, 0.5)]  # user 1's event is older than the crashed batch's
BATCHES = [FIRST, CRASHED, LAST]


class Crash(RuntimeError):
    """The injected fault."""


def events(rows: list[tuple]) -> pd.DataFrame:
    return event_batch(rows, clock.now)


def boundary(platform, step: str):
    """(class, method) of a consumer step's boundary, in the profile's real implementation."""
    owner = {"read": type(transport_for(platform.runtime, SPEC)), "ack": type(transport_for(platform.runtime, SPEC)),
             "offline": type(platform.runtime.offline), "online": OnlineStore}[step]
    return owner, {"read": "read", "ack": "ack", "offline": "write_batch", "online": "write"}[step]


def arm(monkeypatch, platform, step: str, when: str) -> list:
    """Crash at the next call of `step`'s boundary: `after` it did its work, or `instead` of it."""
    owner, name = boundary(platform, step)
    real = getattr(owner, name)
    fired = []

    def crashing(self, *args, **kwargs):
        if fired:
            return real(self, *args, **kwargs)
        fired.append(name)
        if when == "after":
            real(self, *args, **kwargs)
        raise Crash(f"crash injected {when} {owner.__name__}.{name}")

    monkeypatch.setattr(owner, name, crashing)
    return fired


@pytest.fixture
def platform(profile_settings):
    return fp.FeaturePlatform(profile_settings)


def dead_lettered(platform) -> list[tuple[str, str]]:
    """(user_id, reason) of every dead-lettered row, repeats included."""
    t = transport_for(platform.runtime, SPEC)
    if isinstance(t, LandingDirectory):
        frames = [pd.read_parquet(p) for p in sorted(t.dead.glob("*.parquet"))] if t.dead.exists() else []
    else:
        frames = [pd.DataFrame(json.loads(d["rows"])) for d in t.dead_letters()]
    return [(r.user_id, r.reason) for f in frames for r in f.itertuples()]


def assert_recovered(platform) -> None:
    """Every accepted event offline exactly once, the newest per user online, each rejected row dead-lettered
    once, and nothing pending on either transport (nor delivered but unacknowledged in a Redis group)."""
    pushed = events([r for b in BATCHES for r in b]).astype({"user_id": "int64"})
    pushed["event_timestamp"] = pd.to_datetime(pushed["event_timestamp"], utc=True)
    accepted = pushed[pushed["current_session_messages"] >= 0]
    columns = ["user_id", "event_timestamp", *SPEC.feature_names]
    table = platform.offline_table("user_realtime")[columns]
    order = ["user_id", "event_timestamp"]
    pd.testing.assert_frame_equal(table.sort_values(order).reset_index(drop=True),
                                  accepted[columns].sort_values(order).reset_index(drop=True), check_dtype=False)

    newest = accepted.sort_values("event_timestamp").drop_duplicates("user_id", keep="last").set_index("user_id")
    got = platform.online_features(FEATURES, [{"user_id": u} for u in (1, 2, 3, 4)], with_metadata=True)
    got = got.set_index("user_id")
    for user, row in newest.iterrows():
        assert got.loc[user, "current_session_messages__event_timestamp"] == row["event_timestamp"], user
        for f in SPEC.feature_names:
            assert got.loc[user, f] == pytest.approx(row[f]), (user, f)
    assert got.loc[4, "current_session_messages__status"] == "missing"  # only ever rejected

    assert dead_lettered(platform) == [("4", "current_session_messages: failed greater_than_or_equal_to(0) (value -1)")]
    for log in (transport_for(platform.runtime, SPEC), transport_for(platform.runtime, SPEC, direct_log=True)):
        assert log.pending() == []
        if not isinstance(log, LandingDirectory):
            assert log.client.xpending(log.stream, "feature_platform")["pending"] == 0
    assert platform.ingest_pending(SOURCE) == []  # a further pass re-ingests nothing
    assert len(platform.offline_table("user_realtime")) == len(accepted)


@pytest.mark.parametrize(("step", "when"), [("read", "after"), ("offline", "after"), ("online", "after"),
                                            ("ack", "instead")])
def test_sensor_path_crash(platform, monkeypatch, step, when):
    first = platform.push(SOURCE, events(FIRST))
    assert platform.ingest_pending(SOURCE) == [first]
    crashed, last = platform.push(SOURCE, events(CRASHED)), platform.push(SOURCE, events(LAST))
    fired = arm(monkeypatch, platform, step, when)
    with pytest.raises(fp.MaterializationError, match="crash injected"):
        platform.ingest_pending(SOURCE)
    monkeypatch.undo()
    assert fired  # the crash happened at this step, while processing the crashed batch
    assert transport_for(platform.runtime, SPEC).pending() == [crashed, last]  # unacknowledged, not lost
    assert platform.ingest_pending(SOURCE) == [crashed, last]
    assert_recovered(platform)


@pytest.mark.parametrize(("step", "when"), [("online", "instead"), ("online", "after")])
def test_direct_push_crash(platform, monkeypatch, step, when):
    """The low-latency call dies around its online write: the direct log already holds the rows."""
    platform.push(SOURCE, events(FIRST), direct=True)
    fired = arm(monkeypatch, platform, step, when)
    with pytest.raises(Crash):
        platform.push(SOURCE, events(CRASHED), direct=True)
    monkeypatch.undo()
    assert fired
    status = platform.online_features(FEATURES, [{"user_id": 3}], with_metadata=True)["current_session_messages__status"]
    assert status.item() == ("present" if when == "after" else "missing")  # what the crash left online
    platform.push(SOURCE, events(LAST), direct=True)
    logged = transport_for(platform.runtime, SPEC, direct_log=True).pending()
    assert len(logged) == 3  # the crashed call's accepted rows are logged for the offline store
    assert platform.ingest_pending(SOURCE) == [f"direct-{logged[-1]}"]
    assert_recovered(platform)


@pytest.mark.parametrize(("step", "when"), [("offline", "after"), ("ack", "instead")])
def test_direct_log_drain_crash(platform, monkeypatch, step, when):
    """The run draining the direct log dies at each step of its first entry."""
    for batch in BATCHES:
        platform.push(SOURCE, events(batch), direct=True)
    log = transport_for(platform.runtime, SPEC, direct_log=True)
    logged = log.pending()
    fired = arm(monkeypatch, platform, step, when)
    with pytest.raises(fp.MaterializationError, match="crash injected"):
        platform.ingest_pending(SOURCE)
    monkeypatch.undo()
    assert fired and log.pending() == logged
    assert platform.ingest_pending(SOURCE) == [f"direct-{logged[-1]}"]
    assert_recovered(platform)


# --- a real SIGKILL of a consumer process, recovered by the sensor -------------------------------------------


def _consume_and_die(env: dict, step: str, batch_id: str, run_key: str) -> None:
    """Run the sensor's request for `batch_id` as the daemon would, SIGKILLed right after `step`'s boundary."""
    warnings.filterwarnings("ignore")
    platform = fp.FeaturePlatform(Settings.from_env(env))
    owner, name = boundary(platform, step)
    real = getattr(owner, name)

    def then_die(self, *args, **kwargs):
        real(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(owner, name, then_die)
    launch(platform, batch_id, run_key)


@lru_cache(maxsize=8)
def _defs(settings: Settings) -> tuple[list, dg.SensorDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_assets(settings), build_definitions(settings).get_sensor_def(SENSOR)


def launch(platform, partition: str, run_key: str) -> bool:
    """One sensor-requested run, tagged the way the daemon tags it (its run key dedupes later requests)."""
    return dg.materialize(_defs(platform.settings)[0], selection=[dg.AssetKey(SPEC.name)], partition_key=partition,
                   instance=platform.instance(), resources=resources_for(platform.settings), raise_on_error=False,
                   tags={"dagster/run_key": run_key, "dagster/sensor_name": SENSOR}).success


def tick(platform) -> list[dg.RunRequest]:
    """One sensor evaluation, with the daemon's bookkeeping: new partitions added, and requests whose run
    key an earlier run of this sensor already used dropped (the daemon never launches those)."""
    sensor = _defs(platform.settings)[1]
    instance = platform.instance()
    result = sensor(dg.build_sensor_context(instance=instance, resources=resources_for(platform.settings)))
    if isinstance(result, dg.SkipReason):
        return []
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return [r for r in result.run_requests
            if not instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": r.run_key,
                                                                 "dagster/sensor_name": SENSOR}))]


@lru_cache(maxsize=1)
def _workers() -> mp.context.BaseContext:
    """Workers forked from a server that has imported this module once (a spawn re-imports Dagster each time)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


# One step per transport: after the offline write (the half-written point: offline, not online, not
# acknowledged) on the landing directory; after the online write (everything but the XACK) on the stream.
def test_sigkilled_consumer_is_recovered_by_the_sensor(platform, monkeypatch, profile):
    step = {"embedded": "offline", "services": "online"}[profile]
    first = platform.push(SOURCE, events(FIRST))
    assert all(launch(platform, r.partition_key, r.run_key) for r in tick(platform))
    crashed, last = platform.push(SOURCE, events(CRASHED)), platform.push(SOURCE, events(LAST))
    requests = tick(platform)
    assert [r.partition_key for r in requests] == [crashed, last]
    worker = _workers().Process(target=_consume_and_die,
                                args=(platform.settings.as_env(), step, crashed, requests[0].run_key))
    worker.start()
    worker.join(timeout=120)
    assert worker.exitcode == -signal.SIGKILL
    (killed,) = platform.instance().get_runs(filters=dg.RunsFilter(tags={"dagster/partition": crashed}))
    assert killed.status == dg.DagsterRunStatus.STARTED  # nobody will ever mark it finished
    assert crashed in transport_for(platform.runtime, SPEC).pending()  # unacknowledged...
    assert 3 in platform.offline_table("user_realtime")["user_id"].tolist()  # ...though already written offline
    assert launch(platform, last, requests[1].run_key)

    # While the dead run may still be running, its batch is not asked for again...
    assert tick(platform) == []
    # ...and once it is presumed dead, it is, under a new run key.
    monkeypatch.setattr(push_views, "RUN_PRESUMED_DEAD_AFTER", timedelta(0))
    (retry,) = tick(platform)
    assert (retry.partition_key, retry.run_key) == (crashed, f"{crashed}#retry1")
    assert launch(platform, retry.partition_key, retry.run_key)
    assert tick(platform) == []
    assert first not in transport_for(platform.runtime, SPEC).pending()
    assert_recovered(platform)
