"""The Spark online sync writes from executor partitions exactly what the driver's Redis writer writes.

Real Redis (the services profile, its test DB flushed), Spark in local mode (`local[2]`, one SparkSession
for the module, started as `test_spark_engine` starts it). The bytes of every hash are compared with
`RedisFeatures.write`'s, newest-wins is checked across syncs, a materialization with the Spark engine is
compared with the pandas engine's, and stock Feast reads what the executors wrote.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
import redis
from chat_activity.user_activity import SPEC

import feature_platform as fp
from feature_platform.backends.spark_sync import sync_online
from feature_platform.compute.spark_engine import SparkEngine
from feature_platform.demo.generator import generate_day
from feature_platform.feast_format.redis_features import RedisFeatures
from feature_platform.pipeline import _newest, materialize_range
from feature_platform.runtime import Runtime
from feature_platform.stores.online import redis_client
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP, day_end
from feature_platform_tests.helpers import services_settings_in, write_sessions
from feature_platform_tests.test_spark_engine import spark  # noqa: F401 - the module's SparkSession fixture

pytestmark = [pytest.mark.spark, pytest.mark.services]

T1, T2 = pd.Timestamp("2026-01-05", tz="UTC"), pd.Timestamp("2026-01-06", tz="UTC")
FEATURES = [f"user_activity:{name}" for name in SPEC.feature_names]


def feature_rows(ts: pd.Timestamp, users: range, bump: int = 0) -> pd.DataFrame:
    """Rows in the pipeline's dtypes, with nulls of every kind (NaN float, None string) and a negative int."""
    n = len(users)
    return pd.DataFrame({
        "user_id": pd.Series(list(users), dtype="int64"),
        "sessions_7d": pd.Series([i % 5 + bump for i in range(n)], dtype="int64"),
        "avg_session_duration_sec": pd.Series([float("nan") if i % 7 == 0 else i * 1.25 + bump for i in range(n)],
                                              dtype="float32"),
        "messages_sent_7d": pd.Series([i * 3 for i in range(n)], dtype="int64"),
        "tools_used_7d": pd.Series([-i if i % 11 == 0 else i for i in range(n)], dtype="int64"),
        "preferred_model": pd.Series([None if i % 9 == 0 else f"model-{(i + bump) % 4}-é" for i in range(n)],
                                     dtype=object),
        "total_tokens_7d": pd.Series([i * 1_000_003 for i in range(n)], dtype="int64"),
        EVENT_TIMESTAMP: pd.Series([ts] * n).dt.as_unit("us"),
        CREATED_TIMESTAMP: pd.Series([pd.Timestamp("2026-02-01", tz="UTC")] * n).dt.as_unit("us"),
    })


def snapshot(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    """HGETALL of every entity hash in the test DB (the watermark string key aside)."""
    return {k: client.hgetall(k) for k in client.scan_iter(count=1000) if client.type(k) == b"hash"}


@pytest.fixture
def runtime(services_settings):
    """A deployment whose views are registered (`apply`), as `sync_online`, a low-level write, expects: only the
    platform's own writes register a view first, and reads (stock Feast's here) never do."""
    runtime = Runtime(services_settings)
    runtime.apply()
    return runtime


def test_spark_sync_writes_the_bytes_the_driver_writer_writes(spark, runtime):  # noqa: F811
    project = runtime.online.store.config.project
    client = runtime.online.features.client
    # 300 users; 40 of them also have an older row that must lose to the newer one within the run
    rows = pd.concat([feature_rows(T1, range(40), bump=7), feature_rows(T2, range(300))], ignore_index=True)
    frame = spark.createDataFrame(rows).repartition(3)  # several partitions, each with its own client
    assert sync_online(frame, SPEC, runtime.settings, project) == 300
    from_spark = snapshot(client)
    assert len(from_spark) == 300
    assert client.get("feature_platform:watermark:user_activity") == str(T2.value // 1000).encode()

    client.flushdb()
    assert RedisFeatures(redis_client(runtime.settings), project).write(SPEC, _newest(SPEC, None, rows)) == 300
    assert snapshot(client) == from_spark
    stored = RedisFeatures(client, project).read(SPEC, [0, 1, 7], ["avg_session_duration_sec", "preferred_model"])
    assert stored == ([T2.value] * 3, [[None, None], [1.25, "model-1-é"], [None, "model-3-é"]])


def test_an_older_sync_changes_nothing_and_a_tie_rewrites(spark, runtime):  # noqa: F811
    project, client = runtime.online.store.config.project, runtime.online.features.client
    newer = feature_rows(T2, range(50))
    assert sync_online(spark.createDataFrame(newer), SPEC, runtime.settings, project) == 50
    before = snapshot(client)

    older = feature_rows(T1, range(60), bump=3)  # 50 older rows over the newer ones, 10 new users
    assert sync_online(spark.createDataFrame(older).repartition(2), SPEC, runtime.settings, project) == 10
    after = snapshot(client)
    assert {k: v for k, v in after.items() if k in before} == before and len(after) == 60

    tie = feature_rows(T2, range(50), bump=1)  # the same timestamp: a re-run replaces its own values
    assert sync_online(spark.createDataFrame(tie), SPEC, runtime.settings, project) == 50
    stamps, values = RedisFeatures(client, project).read(SPEC, [1, 55], ["sessions_7d"])
    assert stamps == [T2.value, T1.value] and values == [[2], [3]]  # user 1: 1 % 5 + 1; user 55: 55 % 5 + 3


def test_stock_feast_reads_what_the_executors_wrote(spark, runtime):  # noqa: F811
    rows = feature_rows(T2, range(20))
    assert sync_online(spark.createDataFrame(rows), SPEC, runtime.settings, runtime.online.store.config.project) == 20
    got = runtime.feast.get_online_features(features=FEATURES, entity_rows=[{"user_id": u} for u in (3, 9, 14)]
                                            ).to_dict()
    assert got["user_id"] == [3, 9, 14]
    assert got["sessions_7d"] == [3, 4, 4]
    assert got["avg_session_duration_sec"][:2] == pytest.approx([3.75, 11.25])
    assert got["avg_session_duration_sec"][2] is None  # 14 % 7 == 0: NaN is written as Feast's null
    assert got["preferred_model"] == ["model-3-é", None, "model-2-é"]
    assert got["total_tokens_7d"] == [3_000_009, 9_000_027, 14_000_042]


def test_materialize_with_the_spark_engine_gives_the_pandas_engines_online_vectors(spark, services_settings,  # noqa: F811
                                                                                    tmp_path, monkeypatch):
    first, last = date(2026, 1, 8), date(2026, 1, 10)
    days = [first - timedelta(days=8) + timedelta(days=i) for i in range(11)]
    sessions = write_sessions(tmp_path / "sessions", pd.concat([generate_day(d, 60, seed=3) for d in days],
                                                               ignore_index=True))
    now = day_end(last) + timedelta(hours=1)

    def run(settings):
        runtime = Runtime(settings.with_(sessions_path=sessions))
        return materialize_range(runtime, SPEC, first, last), runtime

    with services_settings_in(tmp_path / "pandas") as pandas_settings:
        results_p, runtime_p = run(pandas_settings.with_(engine="pandas"))
        table = fp.FeaturePlatform(runtime_p.settings).offline_table("user_activity", first, last)
        users = [{"user_id": int(u)} for u in sorted(table["user_id"].unique())]
        online_p = fp.FeaturePlatform(runtime_p.settings).online_features(FEATURES, users, now=now)
        bytes_p = snapshot(runtime_p.online.features.client)

    calls = []
    original = SparkEngine.sync_online
    monkeypatch.setattr(SparkEngine, "sync_online", lambda self, *a: calls.append(a[0].name) or original(self, *a))
    results_s, runtime_s = run(services_settings.with_(engine="spark"))
    assert calls == ["user_activity"]  # the executors wrote, not the driver
    online_s = fp.FeaturePlatform(runtime_s.settings).online_features(FEATURES, users, now=now)
    assert len(users) > 40 and online_p["sessions_7d"].notna().all()
    pd.testing.assert_frame_equal(online_s, online_p, check_exact=True)
    assert snapshot(runtime_s.online.features.client) == bytes_p
    assert [r.rows_online for r in results_s] == [r.rows_online for r in results_p]


def test_redis_down_fails_the_spark_sync_fast_and_a_rerun_completes(spark, services_settings, tmp_path):  # noqa: F811
    """A private, password-protected redis-server killed before the sync: the executors' retries give up in
    bounded time with StoreUnavailableError naming host:port, never the password; nothing is half-counted
    (no watermark); once Redis is back, the same sync writes every row."""
    import time

    from feature_platform.errors import StoreUnavailableError
    from feature_platform_tests.helpers import PrivateRedis

    password = "spark-sync-p@ss w0rd!"
    server = PrivateRedis(password).start()
    port = server.port
    settings = services_settings.with_(redis_port=port, redis_db=0, redis_password=password)
    project = Runtime(settings).online.store.config.project
    frame = spark.createDataFrame(feature_rows(T2, range(120))).repartition(2)
    try:
        server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}") as caught:
            sync_online(frame, SPEC, settings, project)
        assert time.monotonic() - started < 120  # bounded retries, not a hang
        assert password not in str(caught.value) and "p@ss" not in str(caught.value)

        server.start()
        client = server.client
        assert client.dbsize() == 0  # no persistence: nothing from the failed attempt, no watermark
        assert sync_online(frame, SPEC, settings, project) == 120
        assert len(snapshot(client)) == 120
        assert client.get("feature_platform:watermark:user_activity") == str(T2.value // 1000).encode()
    finally:
        server.stop()


def test_spark_sync_on_a_redis_cluster(spark, services_settings, tmp_path):  # noqa: F811
    """Executors write to a real three-master Redis Cluster: every master gets entity hashes, the values read
    back equal the driver writer's on a single Redis, stock Feast reads them, and newest-wins holds."""
    from feature_platform.config import Settings
    from feature_platform_tests.test_redis_cluster import CLOSED_PORT, entity_keys_per_master, redis_cluster

    rows = pd.concat([feature_rows(T1, range(30), bump=5), feature_rows(T2, range(200))], ignore_index=True)
    with redis_cluster(tmp_path / "cluster") as ports:
        settings = Settings.from_env({**services_settings.as_env(), "FEATURE_PLATFORM_REDIS_DB": "0",
                                      "FEATURE_PLATFORM_REDIS_CLUSTER_NODES": ",".join(f"127.0.0.1:{p}" for p in ports),
                                      "FEATURE_PLATFORM_REDIS_PORT": str(CLOSED_PORT)})
        cluster_runtime = Runtime(settings)
        cluster_runtime.apply()  # the view registered, as `sync_online` expects (see the `runtime` fixture)
        project = cluster_runtime.online.store.config.project
        assert sync_online(spark.createDataFrame(rows).repartition(3), SPEC, settings, project) == 200
        spread = entity_keys_per_master(ports)
        assert sum(spread.values()) == 200 and min(spread.values()) > 0, spread
        users = list(range(200))
        on_cluster = RedisFeatures(redis_client(settings), project).read(SPEC, users, SPEC.feature_names)

        single = Runtime(services_settings)  # the driver writer on the single Redis: the same values
        RedisFeatures(single.online.features.client, project).write(SPEC, _newest(SPEC, None, rows))
        assert RedisFeatures(single.online.features.client, project).read(SPEC, users, SPEC.feature_names) == on_cluster
        assert on_cluster[0] == [T2.value] * 200

        got = cluster_runtime.feast.get_online_features(features=FEATURES, entity_rows=[{"user_id": 7}]).to_dict()
        assert got["sessions_7d"] == [2] and got["total_tokens_7d"] == [7_000_021]
        older = feature_rows(T1, range(200), bump=9)
        assert sync_online(spark.createDataFrame(older), SPEC, settings, project) == 0  # newest-wins
        assert RedisFeatures(redis_client(settings), project).read(SPEC, users, SPEC.feature_names) == on_cluster
