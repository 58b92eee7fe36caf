"""Training sets joined in Spark (`engine="spark"`) equal the DuckDB join exactly and Feast's
get_historical_features on every row Feast keeps, over offline tables the Spark engine wrote.

Two batch views (user_activity, user_activity_v3) are materialized with FEATURE_PLATFORM_ENGINE=spark;
a pushed view (user_realtime) gets segments with equal feature timestamps and different created
timestamps (the tie rule). Entity rows cover TTL edges to the microsecond, missing entities, duplicate
rows and rows before any feature. PySpark runs in local mode, one SparkSession for the module.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import feature_platform as fp
from feature_platform.compute.window_aggregate import CREATED_TIMESTAMP, EVENT_TIMESTAMP, day_end
from feature_platform.demo.generator import generate_day
from feature_platform.specs.user_activity import SPEC as ACTIVITY
from feature_platform.specs.user_realtime import SPEC as REALTIME
from feature_platform_tests.conftest import make_embedded_settings, services_settings_in, sessions_frame, write_sessions
from feature_platform_tests.test_spark_engine import spark  # noqa: F401 - the module-scoped SparkSession fixture

pytestmark = pytest.mark.spark

FIRST, LAST = date(2026, 1, 8), date(2026, 1, 12)
FEATURES = ([f"user_activity:{n}" for n in ACTIVITY.feature_names]
            + ["user_activity_v3:distinct_models_7d"]
            + [f"user_realtime:{n}" for n in REALTIME.feature_names])
TIE = pd.Timestamp("2026-01-10T12:00:00Z")  # user 3's two realtime rows at this feature time


def realtime_rows() -> pd.DataFrame:
    """Pushed-view rows: user 3 twice at TIE (the later created wins), user 4 at TIE only (TTL edges),
    user 6 twice at TIE again."""
    created = pd.Timestamp("2026-01-10T13:00:00Z")
    second, hour = pd.Timedelta(seconds=1), pd.Timedelta(hours=1)
    return pd.DataFrame({
        "user_id": pd.array([3, 3, 3, 4, 6, 6], dtype="int64"),
        "current_session_messages": pd.array([1, 2, 5, 7, 8, 9], dtype="int64"),
        "current_session_tokens": pd.array([10, 20, 50, 70, 80, 90], dtype="int64"),
        "last_active_minutes_ago": pd.array([0.5, 1.5, 2.5, 3.25, 4.0, 4.5], dtype="float32"),
        EVENT_TIMESTAMP: pd.DatetimeIndex([TIE, TIE, TIE - pd.Timedelta(minutes=30), TIE, TIE, TIE]).as_unit("us"),
        CREATED_TIMESTAMP: pd.DatetimeIndex([created, created + second, created + hour, created, created,
                                             created + second]).as_unit("us"),
    })


@pytest.fixture(scope="module")
def platform(spark, tmp_path_factory):  # noqa: F811 - the imported fixture
    root = tmp_path_factory.mktemp("spark_training")
    settings = make_embedded_settings(root).with_(engine="spark")
    days = [FIRST - timedelta(days=8) + timedelta(days=i) for i in range((LAST - FIRST).days + 9)]
    edges = sessions_frame([(1, "e1", "2026-01-08T10:00:00Z", 60.0, 3, 1, "gpt-4o", 300),  # on FIRST
                            (2, "e2", "2026-01-12T10:00:00Z", 30.0, 2, 0, "llama-3", 200)])  # on LAST
    write_sessions(settings.sessions_path,
                   pd.concat([generate_day(d, 60, seed=3) for d in days] + [edges], ignore_index=True))
    p = fp.FeaturePlatform(settings)
    assert p.runtime.engine.name == "spark"
    for view in ("user_activity", "user_activity_v3"):
        p.materialize(view, FIRST, LAST)
    rows = realtime_rows()  # pushed batches, written as the push path writes them offline
    p.runtime.offline.write_batch(REALTIME, "a", rows.iloc[[0, 1, 3]])  # user 3's tie inside one segment
    p.runtime.offline.write_batch(REALTIME, "b", rows.iloc[[2]])
    p.runtime.offline.write_batch(REALTIME, "c", rows.iloc[[4]])  # user 6's tie across two segments
    p.runtime.offline.write_batch(REALTIME, "d", rows.iloc[[5]])
    return p


def edge_entities() -> pd.DataFrame:
    first = pd.Timestamp(day_end(FIRST))  # the first feature timestamp of the batch views
    last = pd.Timestamp(day_end(LAST))
    us, ttl = pd.Timedelta(microseconds=1), ACTIVITY.ttl
    rows = [
        (1, first - us), (1, first), (1, first + us),  # just before any feature, then on the first one
        (2, last + ttl), (2, last + ttl + us),  # the last feature's TTL: its last instant, then expired
        (5, last), (5, last),  # duplicate entity rows
        (99_999, last),  # an entity with no features anywhere
        (3, TIE - us), (3, TIE), (3, TIE + REALTIME.ttl), (3, TIE + REALTIME.ttl + us),  # created tie, TTL edges
        (4, TIE - REALTIME.ttl), (4, TIE), (4, TIE + us),
        (6, TIE),  # the created tie across two pushed batch files
        (7, pd.Timestamp("2025-06-01T00:00:00Z")),  # long before anything
    ]
    return pd.DataFrame({
        "user_id": pd.array([r[0] for r in rows], dtype="int64"),
        EVENT_TIMESTAMP: pd.to_datetime([r[1] for r in rows], utc=True),
        "label": range(len(rows)),
    }, index=pd.RangeIndex(500, 500 + len(rows)))


def random_entities(seed: int, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(day_end(FIRST)) - pd.Timedelta(days=1)
    seconds = rng.integers(0, 13 * 86_400, n)
    seconds = np.where(rng.random(n) < 0.4, seconds // 86_400 * 86_400, seconds)  # on feature timestamps
    return pd.DataFrame({"user_id": rng.integers(1, 70, n).astype("int64"),  # 61..69 never exist
                         EVENT_TIMESTAMP: start + pd.to_timedelta(seconds, unit="s"),
                         "label": rng.integers(0, 2, n)})


def assert_equals_feast_where_kept(ours: pd.DataFrame, feast: pd.DataFrame, features=FEATURES) -> int:
    """Feast drops some rows (duplicates, and rows where a view has history but none in the TTL); a
    dropped row comes back all null. Every other row must be equal; returns how many were compared.

    Except the created-timestamp ties (users 3 and 6): Feast's file offline store breaks them by created
    timestamp only when the view's Parquet directory is a single file (as in test_point_in_time); over a
    directory of segments (Dask partitions) it returned the earlier-created row here (feast-dev/feast#3360,
    closed as wontfix). The platform keeps the documented rule; those rows are checked by hand below."""
    names = [f.split(":")[1] for f in features]
    kept = ~feast[names].isna().all(axis=1) & ~ours["user_id"].isin([3, 6])
    pd.testing.assert_frame_equal(ours[kept], feast[kept], check_exact=True)
    return int(kept.sum())


def test_spark_equals_duckdb_and_feast_on_the_edges(platform):
    entity = edge_entities()
    ours = platform.training_set(entity, FEATURES, engine="spark")
    pd.testing.assert_frame_equal(ours, platform.training_set(entity, FEATURES), check_exact=True)
    assert assert_equals_feast_where_kept(ours, platform.training_set(entity, FEATURES, engine="feast")) >= 6

    def of(user: int, column: str) -> list:
        return ours.loc[ours["user_id"] == user, column].tolist()

    assert list(ours.index) == list(entity.index) and ours["label"].tolist() == entity["label"].tolist()
    # Before the first feature: null; from its instant on: user 1's FIRST-day values (the edge session only).
    first_row = platform.offline_table("user_activity", FIRST, FIRST).set_index("user_id").loc[1]
    assert of(1, "total_tokens_7d") == [pd.NA, first_row["total_tokens_7d"], first_row["total_tokens_7d"]]
    assert first_row["total_tokens_7d"] >= 300 and of(1, "preferred_model")[1:] == [first_row["preferred_model"]] * 2
    # The last feature row is seen through the TTL's last microsecond, then expires.
    last_row = platform.offline_table("user_activity", LAST, LAST).set_index("user_id").loc[2]
    assert of(2, "total_tokens_7d") == [last_row["total_tokens_7d"], pd.NA]
    # The created-timestamp tie: the later-created row at the same feature time wins; TTL inclusive.
    assert of(3, "current_session_messages") == [5, 2, 2, pd.NA]
    assert of(4, "current_session_tokens") == [pd.NA, 70, 70]
    assert of(6, "current_session_messages") == [9]  # also across two segments
    # Duplicates keep both rows; an unknown entity and a row before everything are all null.
    assert (ours["user_id"] == 5).sum() == 2
    assert ours[ours["user_id"].isin([99_999, 7])][[f.split(":")[1] for f in FEATURES]].isna().all().all()


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 2**32 - 1))
def test_spark_equals_duckdb_on_random_entity_frames(platform, seed):
    entity = random_entities(seed)
    ours = platform.training_set(entity, FEATURES, engine="spark", full_feature_names=True)
    pd.testing.assert_frame_equal(ours, platform.training_set(entity, FEATURES, full_feature_names=True),
                                  check_exact=True)
    assert ours["user_activity__sessions_7d"].notna().sum() > 50  # the comparison is not all nulls


def test_spark_equals_feast_on_random_entity_frame(platform):
    # The batch views only: Feast's Dask join fails outright on a pushed view with no row in range.
    features = [f for f in FEATURES if not f.startswith("user_realtime:")]
    entity = random_entities(7)
    ours = platform.training_set(entity, features, engine="spark")
    feast = platform.training_set(entity, features, engine="feast")
    assert assert_equals_feast_where_kept(ours, feast, features) > 100


def test_request_time_features_with_spark(platform):
    entity = random_entities(11, 60).assign(prompt_tokens=lambda d: np.arange(len(d), dtype="int64") * 10)
    features = ["user_activity_request:tokens_per_message", "user_activity_request:prompt_vs_typical_message",
                "user_activity:sessions_7d"]
    ours = platform.training_set(entity, features, engine="spark")
    pd.testing.assert_frame_equal(ours, platform.training_set(entity, features), check_exact=True)
    assert ours["tokens_per_message"].notna().sum() > 10


def test_empty_entity_frame_with_spark(platform):
    entity = edge_entities().iloc[:0]
    ours = platform.training_set(entity, FEATURES, engine="spark")
    pd.testing.assert_frame_equal(ours, platform.training_set(entity, FEATURES))
    assert ours.empty and list(ours.columns) == [*entity.columns, *(f.split(":")[1] for f in FEATURES)]


@pytest.mark.services
def test_spark_equals_duckdb_on_the_services_profile(spark, tmp_path):  # noqa: F811 - the imported fixture
    """PostgreSQL offline tables (read by the store on the driver, then joined in Spark) give the same set."""
    with services_settings_in(tmp_path) as base:
        settings = base.with_(engine="spark")
        write_sessions(settings.sessions_path, pd.concat(
            [generate_day(LAST - timedelta(days=i), 40, seed=4) for i in range(8)], ignore_index=True))
        p = fp.FeaturePlatform(settings)
        p.materialize("user_activity", LAST)
        features = [f"user_activity:{n}" for n in ACTIVITY.feature_names]
        entity = random_entities(5, 120)
        ours = p.training_set(entity, features, engine="spark")
        pd.testing.assert_frame_equal(ours, p.training_set(entity, features), check_exact=True)
        assert ours["sessions_7d"].notna().sum() > 10
