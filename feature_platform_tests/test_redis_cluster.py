"""The services profile on a real three-master Redis Cluster (FEATURE_PLATFORM_REDIS_CLUSTER_NODES).

The cluster is started here from `redis-server` on free ports; the single Redis of the other services
tests is pointed at a closed port, so anything still talking to it fails the test.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import redis
from chat_activity.user_activity import SPEC as ACTIVITY
from chat_activity.user_realtime import SPEC as REALTIME
from feast.infra.online_stores.redis import RedisType

import feature_platform as fp
from feature_platform.backends import feature_store, repo_config
from feature_platform.config import Settings
from feature_platform.definitions import build_definitions
from feature_platform.defs.resources import resources_for
from feature_platform.errors import StoreUnavailableError
from feature_platform.ingest import transport_for
from feature_platform.stores.online import redis_client
from feature_platform_tests.feast_format.stock_feast import parse_redis_connection_string
from feature_platform_tests.helpers import IN_CI, event_batch, services_settings_in, sessions_frame, write_sessions

USERS = range(1, 41)  # 40 entity keys: every master owns some of them (asserted, not assumed)
DAYS = ["2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08"]
CLOSED_PORT = 1  # nothing listens there: the single-Redis settings must not be used


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(n: int) -> list[int]:
    """Ports free for a node and for its cluster bus (port + 10000)."""
    ports: list[int] = []
    while len(ports) < n:
        p = random.randint(20000, 29999)
        if p not in ports and _bindable(p) and _bindable(p + 10000):
            ports.append(p)
    return ports


def _cluster_ok(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_timeout=1).cluster("info").get("cluster_state") == "ok"
    except redis.RedisError:
        return False


@contextmanager
def redis_cluster(root: Path) -> Iterator[list[int]]:
    """A three-master cluster (no replicas, no persistence) in `root`; torn down on exit."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not (server and cli):
        message = "redis-server and redis-cli are needed to start a Redis Cluster"
        if IN_CI:
            pytest.fail(message + " (CI=true: never skipped)")
        pytest.skip(message)
    root.mkdir(parents=True, exist_ok=True)
    ports = _free_ports(3)
    procs = []
    try:
        for p in ports:
            log = open(root / f"redis-{p}.log", "wb")  # noqa: SIM115 - closed with the process below
            procs.append((subprocess.Popen(
                [server, "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{p}.conf", "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--dir", str(root)], stdout=log, stderr=subprocess.STDOUT), log))
        for p in ports:
            _wait(lambda p=p: _ping(p), f"redis-server on port {p} did not start")
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for p in ports:
            _wait(lambda p=p: _cluster_ok(p), f"cluster node {p} never reached cluster_state:ok")
        yield ports
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, log in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _ping(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_timeout=1).ping()
    except redis.RedisError:
        return False


def _wait(ready, message: str, attempts: int = 300) -> None:
    """Poll `ready` (bounded), failing with `message`: readiness, not a timing assertion."""
    import time

    for _ in range(attempts):
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError(message)


def sessions() -> pd.DataFrame:
    """One session per user and day from Dec 29 to Jan 8, counts varying with user and day."""
    rows = []
    for d, day in enumerate(pd.date_range("2025-12-29", "2026-01-08", freq="D")):
        for u in USERS:
            if (u + d) % 3:  # some users idle on some days: windows differ from day to day
                rows.append((u, f"s{u}-{d}", f"{day.date()}T10:{u % 60:02d}:00Z", 60.0 + u + d, u % 7 + d,
                             d % 4, ["gpt", "claude", "llama"][(u + d) % 3], 100 * u + d))
    return sessions_frame(rows)


def entity_keys_per_master(ports: list[int]) -> dict[int, int]:
    """Feast's entity hashes on each master (keys end with the project; the platform's own start with it)."""
    out = {}
    for p in ports:
        client = redis.Redis(port=p)
        out[p] = sum(1 for k in client.scan_iter(count=1000)
                     if k.endswith(b"feature_platform") and not k.startswith(b"feature_platform:"))
    return out


@pytest.mark.services
def test_the_services_profile_runs_on_a_redis_cluster(tmp_path):
    with services_settings_in(tmp_path) as base, redis_cluster(tmp_path / "cluster") as ports:
        nodes = ",".join(f"127.0.0.1:{p}" for p in ports)
        settings = Settings.from_env({**base.as_env(), "FEATURE_PLATFORM_REDIS_CLUSTER_NODES": nodes,
                                      "FEATURE_PLATFORM_REDIS_DB": "0",
                                      "FEATURE_PLATFORM_REDIS_PORT": str(CLOSED_PORT)})
        write_sessions(settings.sessions_path, sessions())
        platform = fp.FeaturePlatform(settings)
        assert isinstance(platform.runtime.online.features.client, redis.cluster.RedisCluster)

        # Materialize through Dagster; online values equal the last partition's offline rows.
        assert platform.materialize("user_activity", DAYS[0], DAYS[-1]) == DAYS
        last = platform.offline_table("user_activity", DAYS[-1], DAYS[-1]).sort_values("user_id")
        assert sorted(last["user_id"]) == list(USERS)
        features = [f"user_activity:{f}" for f in ACTIVITY.feature_names]
        rows = [{"user_id": int(u)} for u in last["user_id"]]
        now = datetime(2026, 1, 9, 12, tzinfo=timezone.utc)  # within the 7-day TTL of the last partition
        online = platform.online_features(features, rows, with_metadata=True, now=now)
        assert (online["sessions_7d__status"] == "present").all()
        for f in ACTIVITY.fields:
            got, want = online[f.name].tolist(), last[f.name].astype(online[f.name].dtype).tolist()
            assert got == want, f.name
        assert (online["sessions_7d__event_timestamp"] == last["event_timestamp"].to_numpy()).all()
        assert platform.runtime.online.newest_timestamp(ACTIVITY) == last["event_timestamp"].max()
        spread = entity_keys_per_master(ports)
        assert sum(spread.values()) == len(USERS) and min(spread.values()) > 0, spread  # one hash per entity

        # Stock Feast reads the same values through its own cluster client.
        store = feature_store(settings)
        assert store.config.online_store.redis_type == RedisType.redis_cluster
        feast_df = store.get_online_features(features=features, entity_rows=rows).to_df()
        for f in ACTIVITY.fields:
            got = feast_df[f.name].astype(online[f.name].dtype).tolist()
            assert got == online[f.name].tolist(), f.name

        # Newest-wins on the cluster: re-running an older partition rewrites it offline, not online (after
        # the masters lost their script caches, as on a restart: the writer reloads its script on all).
        older = platform.offline_table("user_activity", DAYS[1], DAYS[1])
        for p in ports:
            redis.Redis(port=p).script_flush()
        platform.materialize("user_activity", DAYS[1])
        rerun = platform.offline_table("user_activity", DAYS[1], DAYS[1])
        assert (rerun["created_timestamp"] > older["created_timestamp"]).all()  # replaced, with the same values
        pd.testing.assert_frame_equal(rerun.drop(columns="created_timestamp"), older.drop(columns="created_timestamp"))
        again = platform.online_features(features, rows, with_metadata=True, now=now)
        pd.testing.assert_frame_equal(again, online)
        assert not older.set_index("user_id")["total_tokens_7d"].equals(last.set_index("user_id")["total_tokens_7d"])

        # Push, sensor path: XADD to the cluster's stream, the sensor asks for a run, the run lands it.
        push_now = pd.Timestamp(datetime.now(timezone.utc)).floor("s")
        batch = event_batch([(3, 20, 5, 50, 0.5), (17, 20, 2, 20, 1.0), (29, 20, -1, 1, 0.0)], push_now)
        batch_id = platform.push("user_realtime_events", batch)
        stream = transport_for(platform.runtime, REALTIME)
        assert stream.pending() == [batch_id]
        sensor = build_definitions(settings).get_sensor_def("user_realtime_events_sensor")
        tick = sensor(dg.build_sensor_context(instance=platform.instance(), resources=resources_for(settings)))
        assert [(r.run_key, r.partition_key) for r in tick.run_requests] == [(batch_id, batch_id)]
        assert platform.ingest_pending("user_realtime_events") == [batch_id]
        assert stream.pending() == [] and stream.client.xpending(stream.stream, "feature_platform")["pending"] == 0
        (dead,) = stream.dead_letters()  # the negative count, in the dead-letter stream (another key)
        assert dead["batch_id"] == batch_id and "current_session_messages" in json.loads(dead["rows"])[0]["reason"]

        # Push, direct: online in the call; an older event for the same user does not overwrite.
        result = platform.push("user_realtime_events", event_batch([(3, 5, 9, 90, 0.1), (40, 5, 1, 10, 0.2)],
                                                                       push_now), direct=True)
        assert result.written_online == 2
        stale = platform.push("user_realtime_events", event_batch([(3, 60, 1, 1, 3.0)], push_now), direct=True)
        assert stale.accepted == 1 and stale.written_online == 0
        rt = [f"user_realtime:{f}" for f in REALTIME.feature_names]
        vec = platform.online_features(rt, [{"user_id": u} for u in (3, 17, 29, 40)], output="dict")
        assert vec["current_session_messages"] == [9, 2, None, 1]  # 29's only event was dead-lettered
        drained = platform.ingest_pending("user_realtime_events")  # the direct log, drained offline
        assert len(drained) == 1 and drained[0].startswith("direct-")
        offline_rt = platform.offline_table("user_realtime").sort_values(["user_id", "event_timestamp"])
        assert offline_rt["user_id"].tolist() == [3, 3, 3, 17, 40]
        assert transport_for(platform.runtime, REALTIME, direct_log=True).pending() == []


def test_cluster_nodes_setting_feast_config_and_an_unreachable_cluster():
    env = {"FEATURE_PLATFORM_PROFILE": "services", "FEATURE_PLATFORM_REDIS_PASSWORD": "s3cret",
           "FEATURE_PLATFORM_REDIS_CLUSTER_NODES": " redis-0:7000, redis-1:7001 ,"}
    settings = Settings.from_env(env)
    assert settings.redis_nodes == [("redis-0", 7000), ("redis-1", 7001)]
    assert Settings.from_env(settings.as_env()) == settings
    assert Settings.from_env({}).redis_nodes == []
    online = repo_config(settings).online_store
    assert online.redis_type == RedisType.redis_cluster
    nodes, params = parse_redis_connection_string(online.connection_string)
    assert nodes == [{"host": "redis-0", "port": "7000"}, {"host": "redis-1", "port": "7001"}]
    assert params == {"password": "s3cret"}  # and no `db`: a cluster has database 0 only
    for bad in ("redis-0", "redis-0:x", "redis-0:70000", "::1:7000", "password=x"):
        with pytest.raises(ValueError, match="FEATURE_PLATFORM_REDIS_CLUSTER_NODES must be .*host:port"):
            Settings.from_env({**env, "FEATURE_PLATFORM_REDIS_CLUSTER_NODES": bad})
    with pytest.raises(ValueError, match="FEATURE_PLATFORM_REDIS_DB must be 0"):
        Settings.from_env({**env, "FEATURE_PLATFORM_REDIS_DB": "3"})

    (port,) = _free_ports(1)
    down = settings.with_(redis_cluster_nodes=f"127.0.0.1:{port}")
    with pytest.raises(StoreUnavailableError, match=f"Redis Cluster 127.0.0.1:{port} is unreachable") as failed:
        redis_client(down)
    assert "s3cret" not in str(failed.value)
