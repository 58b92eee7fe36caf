"""Training sets from Python and as assets, on both profiles: point-in-time values, Feast parity,
feature services shared with online reads, no skew, and clear errors for bad entity frames."""

from __future__ import annotations

from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from chat_activity.churn import CHURN_FEATURES
from chat_activity.user_activity import SPEC

import feature_platform as fp
from feature_platform.compute import daily_join
from feature_platform.definitions import build_definitions
from feature_platform.demo.generator import generate_day
from feature_platform.training import EntityFrameError
from feature_platform_tests.helpers import make_embedded_settings, settings_of, write_sessions

FEATURES = list(CHURN_FEATURES.features)
NAMES = [f.split(":")[1] for f in FEATURES]


@pytest.fixture(scope="module")
def platform(profile, tmp_path_factory):
    """One materialized platform per profile, shared by the module's tests (they only read it)."""
    with settings_of(profile, tmp_path_factory.mktemp(profile)) as settings:
        raw = pd.concat([generate_day(date(2026, 4, d), 120, seed=5) for d in range(1, 31)], ignore_index=True)
        write_sessions(settings.sessions_path, raw)
        p = fp.FeaturePlatform(settings)
        p.materialize("user_activity", "2026-04-08", "2026-04-20")
        yield p


def entity_frame(n: int = 300, seed: int = 1) -> pd.DataFrame:
    """Random rows; a third sit exactly on feature timestamps (midnights) or exactly one TTL after them."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-04-08T00:00:00Z")
    seconds = rng.integers(0, 16 * 86_400, n)
    seconds = np.where(rng.random(n) < 0.33, seconds // 86_400 * 86_400, seconds)  # on the edges
    return pd.DataFrame({
        "user_id": rng.integers(1, 130, n).astype("int64"),  # users 121..129 never exist
        "event_timestamp": start + pd.to_timedelta(seconds, unit="s"),
        "label": rng.integers(0, 2, n),
        "note": pd.Categorical(rng.choice(["a", "b"], n)),
    }, index=pd.RangeIndex(1000, 1000 + n))


def by_definition(platform, entity: pd.DataFrame) -> pd.DataFrame:
    table = platform.offline_table("user_activity")
    out = []
    for _, row in entity.iterrows():
        cand = table[(table["user_id"] == row["user_id"]) & (table["event_timestamp"] <= row["event_timestamp"])
                     & (table["event_timestamp"] >= row["event_timestamp"] - SPEC.ttl)]
        out.append(cand.sort_values("event_timestamp").iloc[-1][NAMES].to_dict() if len(cand) else dict.fromkeys(NAMES))
    return pd.DataFrame(out, index=entity.index)


def test_values_are_point_in_time_correct_and_rows_are_kept(platform):
    entity = entity_frame()
    entity = pd.concat([entity, entity.iloc[:5]])  # duplicate entity rows are allowed
    got = platform.training_set(entity, FEATURES)
    assert list(got.index) == list(entity.index) and len(got) == len(entity)
    pd.testing.assert_frame_equal(got[["user_id", "event_timestamp", "label", "note"]], entity)
    want = by_definition(platform, entity)
    for name in NAMES:
        a, b = got[name].astype(object), want[name].astype(object)
        same = [(pd.isna(x) and pd.isna(y)) or (not pd.isna(x) and not pd.isna(y) and
                                                 (x == y or abs(float(x) - float(y)) < 1e-4)) for x, y in zip(a, b)]
        assert all(same), name
    assert got["sessions_7d"].notna().sum() > 100 and got["sessions_7d"].isna().sum() > 0


def test_fast_path_equals_feast_on_real_data(platform):
    entity = entity_frame(seed=2)
    ours = platform.training_set(entity, FEATURES)
    feast = platform.training_set(entity, FEATURES, engine="feast")  # Feast's offline store of the profile
    kept = feast["sessions_7d"].notna()
    assert kept.sum() > 100
    for name in NAMES:
        pd.testing.assert_series_equal(ours.loc[kept, name], feast.loc[kept, name], check_exact=False, rtol=1e-6)


def test_a_batch_view_kept_as_partition_files_is_read_from_them_as_the_duckdb_plan_reads_it(platform, monkeypatch):
    """The Parquet store's daily partitions are read by `compute.daily_join`; the same set as DuckDB's plan (the
    one a store without such files uses, here forced) to the last value and dtype; a file that plan cannot
    read falls back to DuckDB."""
    entity = entity_frame(400, seed=3)
    calls = []
    read = daily_join.join_partitions
    monkeypatch.setattr(daily_join, "join_partitions", lambda *a, **k: calls.append(a) or read(*a, **k))
    got = platform.training_set(entity, FEATURES)
    assert len(calls) == (1 if platform.runtime.offline.kind == "parquet" else 0)
    with monkeypatch.context() as m:
        m.setattr(type(platform.runtime.offline), "partition_files", lambda *a: None)
        pd.testing.assert_frame_equal(got, platform.training_set(entity, FEATURES))

    def refuse(*a, **k):
        raise daily_join.Unsupported("a column stored as a type the plan does not read")

    monkeypatch.setattr(daily_join, "join_partitions", refuse)
    pd.testing.assert_frame_equal(got, platform.training_set(entity, FEATURES))
    assert got["sessions_7d"].notna().sum() > 100


def test_ttl_upper_edge_against_a_single_value(embedded_settings):
    """One feature row at 04-11 00:00: visible from that instant through exactly 7 days later."""
    raw = pd.DataFrame({"user_id": [7], "session_id": ["s"], "event_timestamp": [pd.Timestamp("2026-04-10T12:00:00Z")],
                        "duration_sec": [1.0], "message_count": [1], "tool_invocations": [0], "model": ["m"], "tokens": [3]})
    write_sessions(embedded_settings.sessions_path, raw)
    p = fp.FeaturePlatform(embedded_settings)
    p.materialize("user_activity", "2026-04-10")
    ts = pd.Timestamp("2026-04-11T00:00:00Z")
    entity = pd.DataFrame({"user_id": [7] * 4, "event_timestamp": [ts - pd.Timedelta(microseconds=1), ts, ts + SPEC.ttl,
                                                                    ts + SPEC.ttl + pd.Timedelta(microseconds=1)]})
    got = p.training_set(entity, ["user_activity:sessions_7d", "user_activity:total_tokens_7d"])
    assert got["sessions_7d"].tolist() == [pd.NA, 1, 1, pd.NA]
    assert got["total_tokens_7d"].tolist() == [pd.NA, 3, 3, pd.NA]


def test_feature_service_means_the_same_columns_offline_and_online(platform):
    entity = entity_frame(20)
    offline = platform.training_set(entity, "churn_features")
    assert list(offline.columns) == ["user_id", "event_timestamp", "label", "note", *NAMES]
    online = platform.online_features("churn_features", [{"user_id": 1}, {"user_id": 2}])
    assert list(online.columns) == ["user_id", *NAMES]
    assert offline[NAMES].dtypes.to_dict() == online[NAMES].dtypes.to_dict()
    full = platform.training_set(entity, "churn_features", full_feature_names=True)
    assert "user_activity__sessions_7d" in full.columns


def test_no_skew_between_training_value_at_t_and_online_value_after_materializing_to_t(platform):
    t = pd.Timestamp("2026-04-21T00:00:00Z")  # partitions up to 04-20 are materialized: knowable at t
    table = platform.offline_table("user_activity", "2026-04-20", "2026-04-20")
    users = [int(u) for u in table["user_id"].head(25)]
    entity = pd.DataFrame({"user_id": users, "event_timestamp": [t] * len(users)})
    offline = platform.training_set(entity, "churn_features")
    online = platform.online_features("churn_features", [{"user_id": u} for u in users], now=t.to_pydatetime())
    pd.testing.assert_frame_equal(offline[NAMES].reset_index(drop=True), online[NAMES].reset_index(drop=True))


def test_outputs_arrow_and_parquet_path(platform, tmp_path):
    entity = entity_frame(10)
    table = platform.training_set(entity, FEATURES, output="arrow")
    assert isinstance(table, pa.Table) and table.num_rows == 10
    path = platform.training_set(entity, FEATURES, path=tmp_path / "ts.parquet")
    assert pd.read_parquet(path)["sessions_7d"].tolist() == platform.training_set(entity, FEATURES)["sessions_7d"].tolist()


@pytest.mark.parametrize(
    "mutate, error, text",
    [
        (lambda e: e.drop(columns=["event_timestamp"]), EntityFrameError, "no 'event_timestamp' column"),
        (lambda e: e.assign(event_timestamp=e["event_timestamp"].dt.tz_localize(None)), EntityFrameError, "timezone-naive"),
        (lambda e: e.assign(event_timestamp="2026-04-10"), EntityFrameError, "timezone-naive|must be timezone-aware"),
        (lambda e: e.assign(user_id=e["user_id"].astype(str)), EntityFrameError, "keys are int64"),
        (lambda e: e.drop(columns=["user_id"]), EntityFrameError, "lacks join key 'user_id'"),
        (lambda e: e.assign(user_id=e["user_id"].astype("Int64").where(e.index != 1000)), EntityFrameError, "has nulls"),
    ],
)
def test_bad_entity_frames_fail_before_any_work(embedded_settings, mutate, error, text):
    p = fp.FeaturePlatform(embedded_settings)  # nothing materialized: the check must come first
    with pytest.raises(error, match=text):
        p.training_set(mutate(entity_frame(5)), FEATURES)
    assert issubclass(error, fp.FeaturePlatformError)


def test_unknown_views_and_features(embedded_settings):
    p = fp.FeaturePlatform(embedded_settings)
    with pytest.raises(fp.UnknownFeatureViewError):
        p.training_set(entity_frame(3), ["nope:x"])
    with pytest.raises(fp.UnknownFeatureError, match="has no feature 'x'"):
        p.training_set(entity_frame(3), ["user_activity:x"])
    with pytest.raises(fp.UnknownFeatureError, match="not a feature service"):
        p.training_set(entity_frame(3), "no_such_service")


def test_empty_entity_frame_gives_empty_typed_result(embedded_settings):
    got = fp.FeaturePlatform(embedded_settings).training_set(entity_frame(0), "churn_features")
    assert got.empty and list(got.columns) == ["user_id", "event_timestamp", "label", "note", *NAMES]
    assert str(got["sessions_7d"].dtype) == "Int64" and str(got["avg_session_duration_sec"].dtype) == "float32"


def test_training_set_asset_materializes_with_metadata_and_loads(platform):
    frame = platform.materialize_training_set("churn_training_set")
    assert len(frame) > 0 and set(frame["churned_7d"].unique()) <= {0, 1}
    assert list(frame.columns) == ["user_id", "event_timestamp", "churned_7d", *NAMES]
    pd.testing.assert_frame_equal(platform.load_training_asset("churn_training_set"), frame)
    assert frame["event_timestamp"].max() < pd.Timestamp("2026-04-14T00:00:00Z")  # horizon stays inside the data

    instance = platform.instance()
    event = instance.get_latest_materialization_event(dg.AssetKey("churn_training_set"))
    md = event.asset_materialization.metadata
    assert md["dagster/row_count"].value == len(frame)
    balance = md["label_balance"].value
    assert set(balance) <= {"0", "1"} and abs(sum(balance.values()) - 1) < 1e-6
    assert md["null_rate"].value["sessions_7d"] == pytest.approx(frame["sessions_7d"].isna().mean())
    assert md["feature_views"].value == {"user_activity": {"version": 2, "latest_partition": "2026-04-20"}}

    defs = build_definitions(platform.settings)
    loaded = defs.load_asset_value("churn_training_set", instance=instance)
    pd.testing.assert_frame_equal(loaded, frame)


def test_training_set_lineage_in_the_asset_graph(embedded_settings):
    graph = build_definitions(embedded_settings).resolve_asset_graph()
    parents = graph.get(dg.AssetKey("churn_training_set")).parent_keys
    assert parents == {dg.AssetKey("churn_training_set_labels"), dg.AssetKey("user_activity")}


def test_feature_service_is_in_the_feast_registry(platform):
    platform.apply()
    service = platform.runtime.feast.get_feature_service("churn_features")
    assert [p.name for p in service.feature_view_projections] == ["user_activity"]
    assert [f.name for f in service.feature_view_projections[0].features] == NAMES
    assert service.tags == {"version": "1"}



def active_users(platform, n: int = 2) -> list[int]:
    """Users with messages in the partition of 2026-04-14 (features known from 2026-04-15 00:00)."""
    rows = platform.offline_table("user_activity", "2026-04-14", "2026-04-14")
    return [int(u) for u in rows.loc[rows["messages_sent_7d"] > 0, "user_id"].head(n)]


@pytest.mark.parametrize("engine", ["duckdb", "feast"])
def test_a_caller_column_named_like_a_feature_is_refused_never_overwritten(platform, engine):
    """A label column named like a feature (issue 19 item 4): refused with the column, the feature and the
    ways out; the caller's frame is untouched, and with full feature names it comes back as it was."""
    entity = pd.DataFrame({"user_id": pd.array(active_users(platform), dtype="int64"),
                           "event_timestamp": pd.to_datetime(["2026-04-15T12:00Z"] * 2, utc=True),
                           "sessions_7d": [99, 98]})
    before = entity.copy()
    with pytest.raises(EntityFrameError, match=r"^entity_df already has column\(s\) 'sessions_7d' \(feature "
                                               r"'user_activity:sessions_7d'\).*rename yours or pass full_feature_names"):
        platform.training_set(entity, FEATURES, engine=engine)
    pd.testing.assert_frame_equal(entity, before)

    got = platform.training_set(entity, FEATURES, engine=engine, full_feature_names=True)
    assert got["sessions_7d"].tolist() == [99, 98]
    assert got["user_activity__sessions_7d"].notna().all()
    with pytest.raises(EntityFrameError, match=r"'user_activity__sessions_7d' \(feature 'user_activity:sessions_7d'\)"
                                               r".*rename yours$"):
        platform.training_set(entity.assign(user_activity__sessions_7d=1), FEATURES, engine=engine,
                              full_feature_names=True)
    with pytest.raises(EntityFrameError, match="'sessions_7d'"):  # a feature service's columns alike
        platform.training_set(entity, "churn_features", engine=engine)


def test_a_caller_column_named_like_a_request_time_feature_is_refused(platform):
    entity = pd.DataFrame({"user_id": pd.array(active_users(platform), dtype="int64"),
                           "event_timestamp": pd.to_datetime(["2026-04-15T12:00Z"] * 2, utc=True),
                           "prompt_tokens": [10, 20], "tokens_per_message": [0.5, 0.25],
                           # named like an input the request view reads, not like an output: kept as it is
                           "user_activity__total_tokens_7d": ["mine", "mine"]})
    features = ["user_activity_request:tokens_per_message", "user_activity:sessions_7d"]
    with pytest.raises(EntityFrameError, match=r"'tokens_per_message' \(feature "
                                               r"'user_activity_request:tokens_per_message'\)"):
        platform.training_set(entity, features)
    got = platform.training_set(entity.drop(columns=["tokens_per_message"]), features)
    assert got["user_activity__total_tokens_7d"].tolist() == ["mine", "mine"]
    assert got["tokens_per_message"].notna().any() and got["sessions_7d"].notna().all()


def test_a_label_frame_with_a_feature_named_column_fails_the_training_set_asset(platform, monkeypatch):
    import chat_activity.labels as churn

    real = churn.churn_labels
    monkeypatch.setattr(churn, "churn_labels", lambda *a, **k: real(*a, **k).assign(sessions_7d=1))
    with pytest.raises(fp.MaterializationError, match=r"already has column\(s\) 'sessions_7d'"):
        platform.materialize_training_set("churn_training_set")


def test_the_feast_engine_reads_the_registry_and_never_applies_it(tmp_path):
    """A read does not write: `engine="feast"` on a deployment whose registry does not hold the views says so."""
    platform = fp.FeaturePlatform(make_embedded_settings(tmp_path))
    entity = pd.DataFrame({"user_id": [1], "event_timestamp": [pd.Timestamp("2026-03-05T00:00:00Z")]})
    with pytest.raises(fp.UnknownFeatureViewError, match=r"does not hold feature view\(s\) \['user_activity'\]"):
        platform.training_set(entity, FEATURES, engine="feast")
    assert platform.history().empty  # nothing was applied


@pytest.mark.parametrize("bounds", [(1, 1), (0, 2), (1, 3), (3, 4), (-2, -1)])
def test_partition_files_expose_exactly_the_rows_within_the_bounds(tmp_path, bounds):
    """A batch view's partitions are picked by their names (no per-row filter): still exactly the rows with
    `lo <= event_timestamp <= hi`, both ends inclusive, whatever the bounds cut (a microsecond either side too)."""
    import duckdb

    from feature_platform.stores.offline_parquet import ParquetOfflineStore

    store = ParquetOfflineStore(tmp_path)
    days = [date(2026, 3, 1 + i) for i in range(4)]
    for i, day in enumerate(days):
        rows = pd.DataFrame({"user_id": np.arange(3, dtype="int64") + 10 * i, "sessions_7d": 1,
                             "avg_session_duration_sec": np.float32(1.5), "messages_sent_7d": 2, "tools_used_7d": 0,
                             "preferred_model": "m", "total_tokens_7d": 5,
                             "event_timestamp": store.partition_timestamp(day),
                             "created_timestamp": store.partition_timestamp(day)})
        store.write_partition(SPEC, day, rows)
    stamps = [store.partition_timestamp(d) for d in days]
    at = lambda i: stamps[i] if 0 <= i < len(stamps) else stamps[0] + pd.Timedelta(days=i)  # noqa: E731
    us = pd.Timedelta(microseconds=1)
    for lo, hi in ((at(bounds[0]), at(bounds[1])), (at(bounds[0]) + us, at(bounds[1])), (at(bounds[0]), at(bounds[1]) - us)):
        with duckdb.connect() as con:
            store.register_duckdb(con, SPEC, "v", lo, hi)
            got = sorted(con.execute("SELECT user_id FROM v").fetchall())
        want = sorted((int(10 * i + u),) for i, s in enumerate(stamps) if lo <= s <= hi for u in range(3))
        assert got == want, (lo, hi)
