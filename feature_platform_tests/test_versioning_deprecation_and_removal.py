"""Deprecation (warnings on reads, asset metadata, plan/apply/history) and removal (refused while declared
or referenced; otherwise the registry entry and the online keys go, the offline table stays)."""

from __future__ import annotations

import sqlite3
import warnings
from dataclasses import replace
from datetime import date

import dagster as dg
import pandas as pd
import pytest
import redis
from chat_activity.churn import CHURN_FEATURES, CHURN_TRAINING_SET
from chat_activity.user_activity import SPEC as V2
from chat_activity.user_activity_v3 import SPEC as V3
from chat_activity.user_realtime import SPEC as REALTIME

import feature_platform as fp
from feature_platform.backends import watermarks
from feature_platform.definitions import build_definitions
from feature_platform.demo.generator import generate_day
from feature_platform.errors import UnknownFeatureViewError, ViewInUseError
from feature_platform.runtime import Runtime
from feature_platform.spec import FeatureServiceSpec
from feature_platform.versioning import workflow
from feature_platform.versioning.deprecation import FeatureViewDeprecationWarning
from feature_platform.versioning.plan import UPDATE
from feature_platform_tests.example_repo import all_specs
from feature_platform_tests.helpers import TEST_REDIS_DB, write_sessions

D = date(2026, 3, 10)
NOW = pd.Timestamp("2026-03-11T01:00:00Z")
DEPRECATED = replace(V2, deprecated="use user_activity_v3")
# churn_features moved to version 3: the migration's consumer step
CHURN_V3 = replace(CHURN_FEATURES, version=2, features=tuple(f.replace("user_activity:", "user_activity_v3:")
                                                                for f in CHURN_FEATURES.features))


@pytest.fixture
def platform(profile_settings):
    settings = profile_settings
    write_sessions(settings.sessions_path, pd.concat([generate_day(date(2026, 3, d), 40) for d in range(1, 11)]))
    platform = fp.FeaturePlatform(settings)
    platform.materialize("user_activity", D)
    platform.materialize("user_activity_v3", D)
    return platform


def deprecation_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, FeatureViewDeprecationWarning)]


def test_deprecated_view_warns_on_reads_and_shows_in_asset_metadata(embedded_settings, monkeypatch):
    monkeypatch.setitem(all_specs(), "user_activity", DEPRECATED)
    platform = fp.FeaturePlatform(embedded_settings)
    rows = [{"user_id": 1}]
    with pytest.warns(FeatureViewDeprecationWarning, match="'user_activity' .* deprecated: use user_activity_v3"):
        platform.online_features(["user_activity:sessions_7d"], rows)
    with pytest.warns(FeatureViewDeprecationWarning, match="use user_activity_v3"):
        platform.online_features("churn_features", rows)  # through a feature service too
    entity_df = pd.DataFrame({"user_id": [1], "event_timestamp": [NOW]})
    with pytest.warns(FeatureViewDeprecationWarning):
        platform.training_set(entity_df, ["user_activity:sessions_7d"])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        platform.online_features(["user_activity_v3:sessions_7d"], rows)
        platform.training_set(entity_df, ["user_activity_v3:distinct_models_7d"])
    assert deprecation_warnings(record) == []  # the new version reads quietly

    asset = next(s for s in build_definitions(embedded_settings).resolve_all_asset_specs()
                 if s.key == dg.AssetKey("user_activity"))
    assert asset.description.startswith("DEPRECATED (use user_activity_v3).")
    assert asset.metadata["deprecated"] == "use user_activity_v3" and asset.tags["deprecated"] == "true"
    assert asset.code_version == V2.fingerprint()  # deprecating changes no data


def test_deprecation_is_an_additive_change_applied_with_history(platform, monkeypatch):
    monkeypatch.setitem(all_specs(), "user_activity", DEPRECATED)
    plan = platform.plan()
    view = plan.view("user_activity")
    assert view.action == UPDATE and [(c.kind, c.classification) for c in view.changes] == [("deprecated", "additive")]
    platform.apply(user="erin")
    last = platform.history("user_activity").iloc[-1]
    assert (last["object"], last["action"], last["user"]) == ("user_activity", "update", "erin")
    assert last["diff"][0]["detail"] == "deprecated: 'use user_activity_v3'"
    fv = Runtime(platform.settings).feast.get_feature_view("user_activity")
    assert fv.tags["deprecated"] == "true"


def test_removal_refused_while_declared_or_referenced_then_cleans_online_keys(platform):
    runtime, settings = platform.runtime, platform.settings
    v3_only = [V3, REALTIME]  # the code after deleting user_activity's spec
    workflow.apply(runtime, specs=[V2, V3, REALTIME],
                   services=[CHURN_FEATURES, FeatureServiceSpec("legacy_activity", ("user_activity:sessions_7d",))])

    with pytest.raises(ViewInUseError, match="still declared in code"):
        platform.remove("user_activity")
    with pytest.raises(ViewInUseError, match="feature services churn_features, legacy_activity; "
                                             "training sets churn_training_set"):
        workflow.remove(runtime, "user_activity", specs=v3_only, services=[CHURN_FEATURES],
                        training_sets=[CHURN_TRAINING_SET])
    # churn_features moves to version 3 (applied); legacy_activity is gone from code but still registered
    workflow.apply(runtime, specs=v3_only, services=[CHURN_V3])
    with pytest.raises(ViewInUseError, match="read by feature services legacy_activity:"):
        workflow.remove(runtime, "user_activity", specs=v3_only, services=[CHURN_V3], training_sets=[CHURN_TRAINING_SET])
    runtime.feast.delete_feature_service("legacy_activity")
    assert online_marks(settings) == {"user_activity", "user_activity_v3"}

    done = workflow.remove(runtime, "user_activity", specs=v3_only, services=[CHURN_V3],
                           training_sets=[CHURN_TRAINING_SET], user="frank")
    assert done["view"] == "user_activity"
    fresh = Runtime(settings).feast
    assert sorted(v.name for v in fresh.list_feature_views()) == ["user_activity_v3", "user_realtime"]
    assert online_marks(settings) == {"user_activity_v3"}  # v2's online values are gone, v3's are untouched
    assert watermarks(settings).get("user_activity") is None and watermarks(settings).get("user_activity_v3")
    assert len(runtime.offline.read(V2, D, D)) > 0  # the offline table is kept
    last = workflow.history(runtime, "user_activity").iloc[-1]
    assert (last["action"], last["user"], last["version"]) == ("remove", "frank", 2)
    with pytest.raises(UnknownFeatureViewError, match="not in the registry"):
        workflow.remove(runtime, "user_activity", specs=v3_only, services=[CHURN_V3], training_sets=[])
    assert workflow.resolve_version(runtime, "user_activity", 3) == "user_activity_v3"


def online_marks(settings) -> set[str]:
    """The feature views that have values in the online store."""
    if settings.profile == "services":
        client = redis.Redis(host=settings.redis_host, port=settings.redis_port, db=TEST_REDIS_DB)
        fields = set().union(*(client.hkeys(k) for k in client.scan_iter(count=1000, _type="HASH")))
        return {f.decode()[4:] for f in fields if f.startswith(b"_ts:")} - {"user_realtime"}
    with sqlite3.connect(settings.feast_dir / "online.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {t.removeprefix("feature_platform_") for t in tables if t.startswith("feature_platform_user_activity")
                and conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]}
