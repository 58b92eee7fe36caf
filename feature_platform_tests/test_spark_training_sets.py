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
from chat_activity.user_activity import SPEC as ACTIVITY
from chat_activity.user_realtime import SPEC as REALTIME
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import feature_platform as fp
from feature_platform.demo.generator import generate_day
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP, day_end
from feature_platform_tests.helpers import make_embedded_settings, services_settings_in, sessions_frame, write_sessions
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


# --- entity sets kept in Spark: a Parquet path or a Spark DataFrame in, Spark's Parquet out ---------------

def read_spark_output(path) -> pd.DataFrame:
    """A directory Spark wrote, read back by pandas in its rows' order (part files sort by name)."""
    import pyarrow.parquet as pq

    from feature_platform.compute.spark_point_in_time import arrow_to_pandas

    return arrow_to_pandas(pq.read_table(path))


def as_serving(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """`frame` with `like`'s dtypes and a fresh index (Spark's output has no pandas index)."""
    return frame.astype(like.dtypes.to_dict()).reset_index(drop=True)


def test_parquet_entity_set_written_by_spark_equals_duckdb(platform, tmp_path):
    entity = pd.concat([edge_entities(), random_entities(21, 300)], ignore_index=True)
    entity["note"] = [f"row {i}" for i in range(len(entity))]  # extra columns are kept, in place
    source = tmp_path / "labels.parquet"
    entity.to_parquet(source, index=False)  # pandas writes nanosecond timestamps: Spark reads them as integers
    out = platform.training_set(source, FEATURES, engine="spark", path=tmp_path / "set")
    assert out == tmp_path / "set" and out.is_dir() and len(list(out.glob("part-*.parquet"))) >= 1
    got = read_spark_output(out)
    want = platform.training_set(entity, FEATURES)
    assert list(got.columns) == list(want.columns)
    assert got["event_timestamp"].dt.tz is not None
    pd.testing.assert_frame_equal(as_serving(got, want), want.reset_index(drop=True), check_exact=True)
    assert want["sessions_7d"].notna().sum() > 50 and want["current_session_messages"].notna().sum() >= 3


def test_spark_dataframe_entity_set_and_sub_microsecond_times(platform, spark, tmp_path):  # noqa: F811
    from feature_platform.compute.spark_point_in_time import arrow_to_pandas

    entity = random_entities(22, 200)
    entity.loc[:9, EVENT_TIMESTAMP] = pd.Timestamp(day_end(LAST)) - pd.Timedelta(nanoseconds=1)  # floored to µs
    path = tmp_path / "e.parquet"
    entity.to_parquet(path, index=False)
    # Spark holds microseconds: the entity times come back floored (the join floors them on every engine)
    want = platform.training_set(entity, FEATURES)
    want[EVENT_TIMESTAMP] = want[EVENT_TIMESTAMP].dt.floor("us")
    for source in (path, str(path)):
        got = platform.training_set(source, FEATURES, engine="spark")
        pd.testing.assert_frame_equal(as_serving(got, want), want.reset_index(drop=True), check_exact=True)
    frame = spark.createDataFrame(entity.assign(**{EVENT_TIMESTAMP: entity[EVENT_TIMESTAMP].dt.floor("us")}))
    got = platform.training_set(frame, FEATURES, engine="spark", output="spark")
    assert got.count() == len(entity) and "user_id" in got.columns
    pd.testing.assert_frame_equal(as_serving(platform.training_set(frame, FEATURES, engine="spark"), want),
                                  want.reset_index(drop=True), check_exact=True)
    arrow = platform.training_set(frame, FEATURES, engine="spark", output="arrow")
    assert arrow.num_rows == len(entity) and arrow.column_names == list(want.columns)
    lazy = platform.training_set(entity, FEATURES, engine="spark", output="spark")  # a pandas frame, kept in Spark
    pd.testing.assert_frame_equal(as_serving(arrow_to_pandas(lazy.toArrow()), want), want.reset_index(drop=True),
                                  check_exact=True)


def test_request_time_features_over_a_parquet_entity_set(platform, tmp_path):
    entity = random_entities(23, 120).assign(prompt_tokens=lambda d: np.arange(len(d), dtype="int64") * 7)
    entity.to_parquet(tmp_path / "e.parquet", index=False)
    features = ["user_activity_request:tokens_per_message", "user_activity_request:prompt_vs_typical_message",
                "user_activity:sessions_7d"]
    want = platform.training_set(entity, features)
    got = read_spark_output(platform.training_set(tmp_path / "e.parquet", features, engine="spark",
                                                  path=tmp_path / "out"))
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(as_serving(got, want), want.reset_index(drop=True), check_exact=True)
    assert want["tokens_per_message"].notna().sum() > 10


def test_entity_column_named_like_a_feature_is_refused_never_overwritten(platform, tmp_path):
    """The caller's columns come back untouched (issue 19 item 4): a clash is refused on every Spark path,
    before any Spark job, and with full feature names the caller's column is kept beside the feature."""
    from feature_platform.compute.spark_entity_sets import EntitySetError
    from feature_platform.training import EntityFrameError

    entity = random_entities(24, 50).assign(sessions_7d="stale")[["sessions_7d", "user_id", EVENT_TIMESTAMP]]
    entity.to_parquet(tmp_path / "e.parquet", index=False)
    clash = r"already has column\(s\) 'sessions_7d' \(feature 'user_activity:sessions_7d'\)"
    with pytest.raises(EntitySetError, match=clash):
        platform.training_set(tmp_path / "e.parquet", ["user_activity:sessions_7d"], engine="spark")
    with pytest.raises(EntitySetError, match=clash):
        platform.training_set(entity, ["user_activity:sessions_7d"], engine="spark", output="spark")
    with pytest.raises(EntityFrameError, match=clash):
        platform.training_set(entity, ["user_activity:sessions_7d"], engine="spark")
    request = ["user_activity_request:tokens_per_message"]
    with pytest.raises(EntitySetError, match=r"'tokens_per_message' \(feature 'user_activity_request:"):
        platform.training_set(entity.assign(prompt_tokens=5, tokens_per_message=1.0), request, engine="spark",
                              output="spark")

    want = platform.training_set(entity, ["user_activity:sessions_7d"], full_feature_names=True)
    got = platform.training_set(tmp_path / "e.parquet", ["user_activity:sessions_7d"], engine="spark",
                                full_feature_names=True)
    assert list(got.columns) == list(want.columns) == ["sessions_7d", "user_id", EVENT_TIMESTAMP,
                                                       "user_activity__sessions_7d"]
    assert (got["sessions_7d"] == "stale").all()
    pd.testing.assert_frame_equal(as_serving(got, want), want.reset_index(drop=True), check_exact=True)


def test_an_entity_column_named_like_a_request_views_input_is_kept(platform, tmp_path):
    """Not an output, only the name a request view's input is fetched under: the caller's column is kept."""
    entity = random_entities(29, 40).assign(prompt_tokens=7, user_activity__total_tokens_7d="mine")
    entity.to_parquet(tmp_path / "e.parquet", index=False)
    features = ["user_activity_request:tokens_per_message", "user_activity:sessions_7d"]
    want = platform.training_set(entity, features)
    got = platform.training_set(tmp_path / "e.parquet", features, engine="spark")
    assert list(got.columns) == list(want.columns) and (got["user_activity__total_tokens_7d"] == "mine").all()
    pd.testing.assert_frame_equal(as_serving(got, want), want.reset_index(drop=True), check_exact=True)


def test_empty_parquet_entity_set(platform, tmp_path):
    entity = edge_entities().iloc[:0]
    entity.to_parquet(tmp_path / "e.parquet", index=False)
    got = platform.training_set(tmp_path / "e.parquet", FEATURES, engine="spark")
    want = platform.training_set(entity, FEATURES)
    assert got.empty and list(got.columns) == list(want.columns)


def test_bad_entity_sets_are_refused_with_the_column_and_rows(platform, spark, tmp_path):  # noqa: F811
    from feature_platform.compute.spark_entity_sets import EntitySetError

    base = random_entities(25, 20)

    def refused(frame, text, features=FEATURES):
        path = tmp_path / f"bad{len(list(tmp_path.iterdir()))}.parquet"
        frame.to_parquet(path, index=False)
        with pytest.raises(EntitySetError, match=text):
            platform.training_set(path, features, engine="spark", path=tmp_path / "never")
        assert not (tmp_path / "never").exists()  # nothing written

    refused(base.drop(columns=[EVENT_TIMESTAMP]), "no 'event_timestamp' column")
    refused(base.assign(**{EVENT_TIMESTAMP: base[EVENT_TIMESTAMP].dt.tz_localize(None)}), "timezone-naive")
    refused(base.assign(**{EVENT_TIMESTAMP: "2026-01-10"}), "is string; it must be a timestamp")
    refused(base.drop(columns=["user_id"]), "lacks join key 'user_id' of feature view 'user_activity'")
    refused(base.assign(user_id=base["user_id"].astype(str)), "'user_id' is string, but feature view 'user_activity'")
    nulls = base.assign(user_id=pd.array([None, *base["user_id"][1:]], dtype="Int64"), label=range(len(base)))
    refused(nulls, r"'user_id' has 1 null\(s\); first rows: \[\{'user_id': None, .*'label': 0")
    with pytest.raises(EntitySetError, match="cannot be read as Parquet"):
        platform.training_set(tmp_path / "missing.parquet", FEATURES, engine="spark")
    with pytest.raises(ValueError, match="Spark DataFrame entity set needs engine='spark'"):
        platform.training_set(spark.createDataFrame(pd.DataFrame({"a": [1]})), FEATURES)
    with pytest.raises(ValueError, match="output='spark' needs engine='spark'"):
        platform.training_set(base, FEATURES, output="spark")


def test_parquet_entity_set_with_the_duckdb_engine(platform, tmp_path):
    entity = random_entities(26, 80)
    entity.to_parquet(tmp_path / "e.parquet", index=False)
    pd.testing.assert_frame_equal(platform.training_set(tmp_path / "e.parquet", FEATURES),
                                  platform.training_set(entity, FEATURES))


def test_training_set_asset_joins_in_spark_on_the_spark_engine(platform, monkeypatch):
    """With FEATURE_PLATFORM_ENGINE=spark the training-set asset's join runs in Spark, equal to DuckDB's."""
    from feature_platform import training
    from feature_platform.training import label_frame
    from feature_platform_tests.example_repo import EXAMPLE

    calls = []
    real = training._spark_join
    monkeypatch.setattr(training, "_spark_join", lambda *a, **k: calls.append(1) or real(*a, **k))
    frame = platform.materialize_training_set("churn_training_set")
    assert calls, "the asset did not join in Spark"
    labels = label_frame(platform.runtime, EXAMPLE.training_sets["churn_training_set"])
    pd.testing.assert_frame_equal(frame, platform.training_set(labels, "churn_features"), check_exact=True)
    assert len(frame) > 0


def test_request_time_errors_over_a_parquet_entity_set(platform, tmp_path, monkeypatch):
    """A missing request field is refused on the driver; a request function failing on the executors is
    the platform's RequestFeatureError again on the driver; `path` keeps what it held before."""
    import dataclasses

    from chat_activity.user_activity_request import SPEC as REQUEST

    from feature_platform import request_time

    features = ["user_activity_request:tokens_per_message"]
    entity = random_entities(27, 40)
    entity.to_parquet(tmp_path / "e.parquet", index=False)
    with pytest.raises(request_time.RequestFeatureError, match=r"lacks request field\(s\) \['prompt_tokens'\]"):
        platform.training_set(tmp_path / "e.parquet", features, engine="spark", path=tmp_path / "out")
    assert not (tmp_path / "out").exists()

    entity.assign(prompt_tokens=np.int64(5)).to_parquet(tmp_path / "e.parquet", index=False)
    out = platform.training_set(tmp_path / "e.parquet", features, engine="spark", path=tmp_path / "out")
    before = read_spark_output(out)
    broken = dataclasses.replace(REQUEST, function=len)  # returns an int, not a DataFrame (a builtin: pickles anywhere)
    monkeypatch.setitem(platform.runtime.repo.request_views, REQUEST.name, broken)
    with pytest.raises(request_time.RequestFeatureError, match="its function must return a DataFrame"):
        platform.training_set(tmp_path / "e.parquet", features, engine="spark", path=tmp_path / "out")
    pd.testing.assert_frame_equal(read_spark_output(out), before)  # the earlier set, whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging left behind
