"""user_activity version 2 and version 3 side by side: both assets in the graph, both materialized
through Dagster to their own offline tables and online keys, both served; v3's added feature against
hand-computed values."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pandas as pd
import redis
from chat_activity.user_activity import SPEC as V2
from chat_activity.user_activity_v3 import SPEC as V3

import feature_platform as fp
from feature_platform.compute.window_aggregate import aggregate_day
from feature_platform.definitions import build_definitions
from feature_platform.demo.generator import generate_day
from feature_platform_tests.helpers import TEST_REDIS_DB, sessions_frame, write_sessions

D = date(2026, 3, 10)  # window of D: [2026-03-04 00:00, 2026-03-11 00:00)
SHARED = V2.feature_names

RAW = sessions_frame([
    # user 1: three sessions, two distinct models
    (1, "a1", "2026-03-04T00:00:00Z", 100.0, 2, 1, "opus", 10),
    (1, "a2", "2026-03-06T08:00:00Z", 200.0, 2, 1, "sonnet", 10),
    (1, "a3", "2026-03-10T23:59:59.999999Z", 300.0, 4, 0, "opus", 30),
    # ... a model used just outside the window does not count
    (1, "a0", "2026-03-03T23:59:59.999999Z", 1.0, 1, 1, "haiku", 1),
    # user 2: one model twice
    (2, "b1", "2026-03-05T10:00:00Z", 60.0, 1, 0, "haiku", 5),
    (2, "b2", "2026-03-07T10:00:00Z", 60.0, 1, 0, "haiku", 5),
    # user 3: window just became empty -> closing row, 0 distinct models
    (3, "c1", "2026-03-03T12:00:00Z", 50.0, 3, 1, "opus", 40),
])


def test_v3_distinct_models_against_hand_computed_values_and_v2_features_unchanged():
    v3 = aggregate_day(V3, RAW, D).set_index("user_id")
    assert v3["distinct_models_7d"].to_dict() == {1: 2, 2: 1, 3: 0}
    assert str(v3["distinct_models_7d"].dtype) == "int64"
    v2 = aggregate_day(V2, RAW, D).set_index("user_id")
    pd.testing.assert_frame_equal(v3[SHARED], v2[SHARED])  # the shared features are computed identically
    assert v3.loc[3, "preferred_model"] == "unknown" and v3.loc[3, "sessions_7d"] == 0


def test_both_versions_are_assets_in_the_graph(embedded_settings):
    d = build_definitions(embedded_settings)
    specs = {s.key: s for s in d.resolve_all_asset_specs()}
    v2, v3 = specs[dg.AssetKey("user_activity")], specs[dg.AssetKey("user_activity_v3")]
    assert (v2.tags["version"], v3.tags["version"], v3.tags["family"]) == ("2", "3", "user_activity")
    assert v3.metadata["family"] == "user_activity" and v3.metadata["version"] == 3
    assert [dep.asset_key for dep in v3.deps] == [dg.AssetKey("raw_sessions")]
    assert v2.code_version != v3.code_version


def test_two_versions_materialized_and_served_side_by_side(profile, profile_settings):
    settings = profile_settings
    raw = pd.concat([generate_day(date(2026, 3, d), 60) for d in range(1, 11)])
    write_sessions(settings.sessions_path, raw)
    platform = fp.FeaturePlatform(settings)
    platform.materialize("user_activity", D)
    platform.materialize("user_activity_v3", D)

    v2, v3 = platform.offline_table("user_activity", D, D), platform.offline_table("user_activity_v3", D, D)
    assert "distinct_models_7d" not in v2.columns and len(v3) == len(v2) > 0
    pd.testing.assert_frame_equal(v3[["user_id", *SHARED]], v2[["user_id", *SHARED]])
    # distinct_models_7d, computed independently from the raw sessions
    end = pd.Timestamp("2026-03-11", tz="UTC")
    window = raw[(raw["event_timestamp"] >= end - pd.Timedelta(days=7)) & (raw["event_timestamp"] < end)]
    expected = window.groupby("user_id")["model"].nunique()
    got = v3.set_index("user_id")["distinct_models_7d"]
    assert got[got > 0].sort_index().to_dict() == expected.sort_index().to_dict()

    users = expected.index[:5].tolist()
    refs = [f"user_activity:{f}" for f in SHARED] + [f"user_activity_v3:{f}" for f in V3.feature_names]
    online = platform.online_features(refs, [{"user_id": u} for u in users], full_feature_names=True,
                                      with_metadata=True, now=end + pd.Timedelta(hours=1))
    for feature in SHARED:
        assert online[f"user_activity__{feature}"].tolist() == online[f"user_activity_v3__{feature}"].tolist()
    assert online["user_activity_v3__distinct_models_7d"].tolist() == expected.loc[users].tolist()
    assert (online["user_activity__sessions_7d__status"] == "present").all()
    assert (online["user_activity_v3__distinct_models_7d__status"] == "present").all()

    if profile == "services":  # its own online keys: each version's fields and timestamp in the entity's hash
        client = redis.Redis(host=settings.redis_host, port=settings.redis_port, db=TEST_REDIS_DB)
        fields = set().union(*(client.hkeys(k) for k in client.scan_iter(count=1000, _type="HASH")))
        assert {b"_ts:user_activity", b"_ts:user_activity_v3"} <= fields
    else:
        assert (settings.offline_dir / "user_activity").is_dir() and (settings.offline_dir / "user_activity_v3").is_dir()

    entity_df = pd.DataFrame({"user_id": users, "event_timestamp": end + pd.Timedelta(hours=2)})
    both = platform.training_set(entity_df, ["user_activity:sessions_7d", "user_activity_v3:sessions_7d",
                                             "user_activity_v3:distinct_models_7d"], full_feature_names=True)
    assert both["user_activity__sessions_7d"].tolist() == both["user_activity_v3__sessions_7d"].tolist()
    assert both["user_activity_v3__distinct_models_7d"].tolist() == expected.loc[users].tolist()
