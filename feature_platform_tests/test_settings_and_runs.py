"""One configuration, one runtime, explicit registry writes and errors that keep their data (issue 20 items 2-4).

Explicit settings win over the environment; the Dagster resource carries every field of them; the facade's runs
use the facade's own runtime (so the registry is applied once per process); a read never writes the registry;
a validation failure reaches the caller with its failing rows and quarantine path; importing the definitions
reads no environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields, replace
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from chat_activity.user_activity import SPEC as V2
from chat_activity.user_activity_v3 import SPEC as V3
from chat_activity.user_realtime import SPEC as REALTIME

import feature_platform as fp
from feature_platform.config import ConfigurationError, Settings, env_name
from feature_platform.defs import feature_views
from feature_platform.defs.resources import SECRET_FIELDS, FeaturePlatformResource
from feature_platform.demo.generator import generate_day
from feature_platform.runtime import Runtime
from feature_platform.spec import Agg, Field
from feature_platform.versioning import workflow
from feature_platform_tests.helpers import write_sessions

ROOT = Path(__file__).resolve().parents[1]
NOW = pd.Timestamp("2026-01-11T12:00:00Z").to_pydatetime()


@pytest.fixture
def settings(embedded_settings):
    raw = pd.concat([generate_day(date(2026, 1, d), 80) for d in range(1, 12)], ignore_index=True)
    write_sessions(embedded_settings.sessions_path, raw)
    return embedded_settings


def hostile(monkeypatch, root: Path) -> Path:
    """An environment naming another deployment, with values from_env refuses; returns its home."""
    elsewhere = root / "elsewhere"
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for name, value in {"FEATURE_PLATFORM_EXECUTOR": "bogus", "FEATURE_PLATFORM_PROFILE": "bogus",
                        "FEATURE_PLATFORM_HOME": str(elsewhere), "FEATURE_PLATFORM_BACKFILL_DAYS_PER_RUN": "bogus",
                        "FEATURE_PLATFORM_ENGINE": "bogus", "HOME": str(elsewhere / "user")}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError):
        Settings.from_env()  # the environment really is unusable
    return elsewhere


def test_explicit_settings_beat_a_hostile_environment(settings, monkeypatch, tmp_path):
    elsewhere = hostile(monkeypatch, tmp_path)
    platform = fp.FeaturePlatform(settings)
    assert platform.materialize("user_activity", "2026-01-09", "2026-01-10") == ["2026-01-09", "2026-01-10"]
    table = platform.offline_table("user_activity", "2026-01-10", "2026-01-10")
    latest = table.head(5)
    online = platform.online_features(["user_activity:sessions_7d"], [{"user_id": int(u)} for u in latest["user_id"]],
                                      now=NOW)
    assert online["sessions_7d"].tolist() == latest["sessions_7d"].tolist()
    assert platform.instance().get_materialized_partitions(dg.AssetKey("user_activity")) == {"2026-01-09", "2026-01-10"}
    assert not elsewhere.exists()  # nothing went to the environment's home


def test_explicit_backfill_days_per_run_reaches_the_run_on_the_callers_runtime(settings, monkeypatch):
    settings = settings.with_(backfill_days_per_run=2)
    monkeypatch.setenv("FEATURE_PLATFORM_BACKFILL_DAYS_PER_RUN", "92")
    seen = []
    real = feature_views.materialize_range

    def spy(runtime, spec, first, last, **kwargs):
        seen.append((runtime, first, last))
        return real(runtime, spec, first, last, **kwargs)

    monkeypatch.setattr(feature_views, "materialize_range", spy)
    platform = fp.FeaturePlatform(settings)
    platform.materialize("user_activity", "2026-01-06", "2026-01-10")
    assert [(first.isoformat(), last.isoformat()) for _, first, last in seen] == [
        ("2026-01-06", "2026-01-07"), ("2026-01-08", "2026-01-09"), ("2026-01-10", "2026-01-10")]
    assert all(runtime is platform.runtime for runtime, _, _ in seen)  # one runtime: the caller's
    assert {runtime.settings.backfill_days_per_run for runtime, _, _ in seen} == {2}


def test_the_resource_carries_every_field_of_explicit_settings(settings, monkeypatch):
    """Every field differs from its default; secrets the environment holds become EnvVar references."""
    changed = settings.with_(profile="services", demo_users=3, demo_seed=4, pg_host="db", pg_port=5433, pg_user="u",
                             pg_password="pw", pg_db="d1", dagster_pg_db="d2", redis_host="r", redis_port=6380,
                             redis_db=2, redis_password="rpw", redis_cluster_nodes="",
                             alert_webhook_url="https://hook.example/x", alert_slack_webhook_url="https://s.example/y",
                             backfill_days_per_run=5, compute_ahead=False, serving_tokens_file="/t.yaml", serving_max_body_bytes=7,
                             serving_max_entities=8, online_read_timeout_sec=0.25, online_write_timeout_sec=3.5,
                             engine="spark", spark_master="local[1]", executor="multiprocess",
                             executor_config="/e.yaml", partitions_start=date(2025, 6, 1), repo="/teams/features")
    defaults = Settings.from_env({})
    same = [f.name for f in fields(Settings) if getattr(changed, f.name) == getattr(defaults, f.name)]
    assert same == ["redis_cluster_nodes"]  # its other value needs redis_db 0: covered by the cluster tests
    for name in SECRET_FIELDS:
        monkeypatch.delenv(env_name(name), raising=False)
    assert FeaturePlatformResource.from_settings(changed).settings() == changed
    monkeypatch.setenv("FEATURE_PLATFORM_PG_PASSWORD", "pw")  # as deployed: the secret is in the environment
    resource = FeaturePlatformResource.from_settings(changed)
    assert isinstance(resource.pg_password, dg.EnvVar) and not isinstance(resource.redis_password, dg.EnvVar)
    assert resource.settings() == changed


def test_the_registry_is_applied_once_per_process_per_settings(settings, monkeypatch):
    calls = []
    real = workflow.apply

    def counted(*args, **kwargs):
        calls.append(kwargs.get("via", "apply"))
        return real(*args, **kwargs)

    monkeypatch.setattr(workflow, "apply", counted)
    platform = fp.FeaturePlatform(settings)
    platform.materialize("user_activity", "2026-01-09")
    platform.online_features(["user_activity:sessions_7d"], [{"user_id": 1}], now=NOW)
    platform.freshness(now=NOW)
    fp.FeaturePlatform(settings).materialize("user_activity", "2026-01-10")  # same settings: same runtime
    assert fp.FeaturePlatform(settings).runtime is platform.runtime
    assert calls == ["auto-apply"]


def test_online_features_never_writes_the_registry(settings):
    # The registry holds user_activity with a field more than the code: applying the code would be breaking.
    added = replace(V2, fields=(*V2.fields, Field("distinct_models_7d", "int64", "Distinct models", ge=0)),
                    aggregation=replace(V2.aggregation, aggs=(*V2.aggregation.aggs,
                                                              Agg("distinct_models_7d", "count_distinct", "model"))))
    workflow.apply(Runtime(settings), specs=[added, V3, REALTIME])
    registry = settings.feast_dir / "registry.db"
    before, history = registry.read_bytes(), len(workflow.history(Runtime(settings)))
    platform = fp.FeaturePlatform(settings)
    online = platform.online_features(["user_activity:sessions_7d"], [{"user_id": 1}], with_metadata=True, now=NOW)
    assert online["sessions_7d__status"].tolist() == ["missing"]  # read, not refused with BreakingChangeError
    platform.online_features(["user_activity:sessions_7d"], [{"user_id": 1}], output="dict", now=NOW)
    assert registry.read_bytes() == before
    assert len(workflow.history(Runtime(settings))) == history


def test_a_read_before_anything_is_registered_is_missing_and_registers_nothing(settings):
    platform = fp.FeaturePlatform(settings)
    read = platform.online_features(["user_activity:sessions_7d", "user_realtime:current_session_messages"],
                                    [{"user_id": 1}, {"user_id": 2}], with_metadata=True, now=NOW)
    assert read["sessions_7d__status"].tolist() == read["current_session_messages__status"].tolist() == [
        "missing", "missing"]
    assert read["sessions_7d"].isna().all()
    assert platform.runtime.feast.list_feature_views(allow_cache=False) == []
    assert workflow.history(platform.runtime).empty


def test_a_validation_failure_reaches_the_caller_with_its_rows_and_quarantine(settings, monkeypatch):
    from feature_platform import pipeline

    failures = pd.DataFrame({"column": ["sessions_7d"], "check": ["forced"], "index": [0], "failure_case": [1],
                             "schema_context": ["Column"], "check_number": [0]})
    monkeypatch.setattr(pipeline, "validate", lambda spec, rows: failures)
    platform = fp.FeaturePlatform(settings)
    with pytest.raises(fp.ValidationFailedError) as failed:
        platform.materialize("user_activity", "2026-01-09")
    error = failed.value
    assert (error.view, error.partition) == ("user_activity", "2026-01-09")
    assert error.failures is not None and error.failures["check"].tolist() == ["forced"]
    assert error.quarantine_path is not None and Path(error.quarantine_path).exists()
    assert Path(error.quarantine_path).is_relative_to(settings.quarantine_dir)


def test_importing_the_definitions_reads_no_environment(tmp_path):
    """Importing the package and the definitions module neither reads FEATURE_PLATFORM_* nor builds anything;
    Dagster's load does, and a bad variable is then a clear error."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEATURE_PLATFORM_")}
    env |= {"FEATURE_PLATFORM_EXECUTOR": "bogus", "FEATURE_PLATFORM_PROFILE": "bogus",
            "FEATURE_PLATFORM_HOME": str(tmp_path / "elsewhere")}
    code = """
import dagster as dg
import feature_platform, feature_platform.definitions as d
from feature_platform.config import ConfigurationError
assert "defs" not in vars(d), "built on import"
assert type(d.load_definitions).__name__ == "LazyDefinitions"
try:
    d.load_definitions()
except ConfigurationError as exc:
    print("load:", exc)
"""
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "load: FEATURE_PLATFORM_PROFILE must be 'embedded' or 'services', not 'bogus'" in done.stdout
    assert not (tmp_path / "elsewhere").exists()
