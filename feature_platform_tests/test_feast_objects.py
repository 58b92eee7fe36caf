"""Spec -> Feast objects, applied to the registry of each profile (file / PostgreSQL SQL registry)."""

import json
from datetime import timedelta

from chat_activity.user_activity import SPEC
from feast.types import Float32, Int64, String

from feature_platform.derive.description import DESCRIPTION_TAG, describe
from feature_platform.runtime import Runtime


def test_registry_holds_the_derived_entity_source_and_view(profile, profile_settings):
    settings = profile_settings
    runtime = Runtime(settings)
    runtime.apply()
    store = Runtime(settings).feast  # a fresh client reads what was applied
    entity = store.get_entity("user")
    assert entity.join_key == "user_id"
    fv = store.get_feature_view("user_activity")
    assert fv.ttl == timedelta(days=7)
    assert [(f.name, f.dtype) for f in fv.features] == [
        ("sessions_7d", Int64), ("avg_session_duration_sec", Float32), ("messages_sent_7d", Int64),
        ("tools_used_7d", Int64), ("preferred_model", String), ("total_tokens_7d", Int64),
    ]
    description = json.loads(fv.tags.pop(DESCRIPTION_TAG))  # the spec's description, for `plan`
    assert fv.tags == {"team": "platform", "freshness_sla": "daily", "version": "2"}
    assert description == describe(SPEC)
    assert fv.owner == "team:platform"
    assert fv.batch_source.timestamp_field == "event_timestamp"
    assert fv.batch_source.created_timestamp_column == "created_timestamp"
    if profile == "services":
        assert type(store.registry).__name__ == "SqlRegistry"
        assert fv.batch_source.get_table_query_string() == "offline.user_activity"
    else:
        assert fv.batch_source.path == str(settings.offline_dir / SPEC.name)
    runtime.apply()  # idempotent
    assert sorted(v.name for v in store.list_feature_views()) == ["user_activity", "user_activity_v3", "user_realtime"]
