"""The Dagster Definitions load, validate, and derive everything from the spec."""

from datetime import timedelta

import dagster as dg
from chat_activity.user_activity import SPEC

from feature_platform.config import Settings
from feature_platform.definitions import build_definitions, defs
from feature_platform.defs.feature_views import PANDERA_CHECK
from feature_platform_tests.example_repo import all_specs


def test_module_level_defs_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    assert set(defs.resolve_all_asset_keys()) >= {dg.AssetKey("raw_sessions"), dg.AssetKey("user_activity")}


def test_every_spec_becomes_an_asset(embedded_settings):
    keys = build_definitions(embedded_settings).resolve_all_asset_keys()
    assert {dg.AssetKey(name) for name in all_specs()} <= set(keys)


def test_user_activity_asset_is_derived_from_its_spec(embedded_settings):
    d = build_definitions(embedded_settings)
    spec_by_key = {s.key: s for s in d.resolve_all_asset_specs()}
    asset = spec_by_key[dg.AssetKey("user_activity")]
    assert isinstance(asset.partitions_def, dg.DailyPartitionsDefinition)
    assert asset.partitions_def.start.date() == embedded_settings.partitions_start
    assert asset.code_version == SPEC.fingerprint()
    assert asset.owners == ["team:platform"]
    assert asset.group_name == "feature_views"
    assert asset.description == SPEC.description
    assert {"pandas", "feast", "parquet", "sqlite"} <= asset.kinds
    assert asset.tags["team"] == "platform" and asset.tags["freshness_sla"] == "daily" and asset.tags["version"] == "2"
    assert asset.freshness_policy.fail_window.to_timedelta() == timedelta(hours=26)
    schema = asset.metadata["dagster/column_schema"]
    cols = {c.name: c for c in schema.columns}
    assert list(cols)[:7] == ["user_id", *SPEC.feature_names]
    assert cols["sessions_7d"].type == "int64" and cols["sessions_7d"].constraints.other == [">= 0"]
    assert cols["avg_session_duration_sec"].constraints.nullable
    (dep,) = asset.deps
    assert dep.asset_key == dg.AssetKey("raw_sessions")
    assert dep.partition_mapping.start_offset == -7  # the window plus one day for closing rows


def test_services_profile_asset_kinds(embedded_settings):
    d = build_definitions(embedded_settings.with_(profile="services"))
    asset = next(s for s in d.resolve_all_asset_specs() if s.key == dg.AssetKey("user_activity"))
    assert {"postgres", "redis"} <= asset.kinds


def test_pandera_check_is_blocking_and_partitioned(embedded_settings):
    d = build_definitions(embedded_settings)
    graph = d.get_repository_def().asset_graph
    key = dg.AssetCheckKey(dg.AssetKey("user_activity"), PANDERA_CHECK)
    assert key in graph.asset_check_keys
    check_spec = graph.get_check_spec(key)
    assert check_spec.blocking
    assert check_spec.partitions_def is not None


def test_code_version_changes_with_the_spec():
    from dataclasses import replace

    assert replace(SPEC, ttl=timedelta(days=8)).fingerprint() != SPEC.fingerprint()
    assert replace(SPEC, ttl=timedelta(days=7)).fingerprint() == SPEC.fingerprint()


def test_definitions_built_from_env_default_to_embedded(monkeypatch, tmp_path):
    monkeypatch.delenv("FEATURE_PLATFORM_PROFILE", raising=False)
    monkeypatch.setenv("FEATURE_PLATFORM_HOME", str(tmp_path))
    assert Settings.from_env().profile == "embedded"
    dg.Definitions.validate_loadable(build_definitions())
