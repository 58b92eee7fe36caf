"""plan / apply against the real registry of each profile: history, refusal of breaking changes in place
(API, CLI exit code 2, and materializations), and an additive change applied in place end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
from chat_activity.user_activity import SPEC as V2
from chat_activity.user_activity_v3 import SPEC as V3
from chat_activity.user_realtime import SPEC as REALTIME

import feature_platform as fp
from feature_platform import runtime as runtimes
from feature_platform.demo.generator import generate_day
from feature_platform.errors import BreakingChangeError, MaterializationError
from feature_platform.runtime import Runtime
from feature_platform.spec import Agg, Field
from feature_platform.versioning import workflow
from feature_platform.versioning.plan import CREATE, UNCHANGED, UPDATE
from feature_platform_tests.example_repo import all_specs
from feature_platform_tests.helpers import write_sessions

D1, D2 = date(2026, 5, 9), date(2026, 5, 10)

# user_activity with one more field, in place (additive)
ADDED = replace(V2, fields=(*V2.fields, Field("distinct_models_7d", "int64", "Distinct models", ge=0)),
                aggregation=replace(V2.aggregation, aggs=(*V2.aggregation.aggs,
                                                          Agg("distinct_models_7d", "count_distinct", "model"))))


@pytest.fixture
def settings(profile_settings):
    return profile_settings


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.as_env(), "FEATURE_PLATFORM_SESSIONS_PATH": str(settings.sessions_path)}
    return subprocess.run([sys.executable, "-m", "feature_platform.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_apply_records_who_when_what_and_a_second_apply_changes_nothing(settings):
    runtime = Runtime(settings)
    before = workflow.plan(runtime)
    assert {v.name: v.action for v in before.views} == {
        "user_activity": CREATE, "user_activity_v3": CREATE, "user_realtime": CREATE}
    started = datetime.now(timezone.utc)
    workflow.apply(runtime, user="alice@laptop")

    again = Runtime(settings)  # a fresh client: what is registered, not a cache
    assert {v.action for v in workflow.plan(again).views} == {UNCHANGED}
    assert not workflow.apply(again, user="bob@laptop").has_changes
    history = workflow.history(again)
    assert list(history["object"]) == ["user_activity", "user_activity_v3", "user_realtime", "churn_features"]
    assert set(history["user"]) == {"alice@laptop"} and set(history["via"]) == {"apply"}
    assert (history["at"] >= pd.Timestamp(started) - pd.Timedelta(seconds=5)).all()
    v3 = history[history["object"] == "user_activity_v3"].iloc[0]
    assert (v3["family"], v3["version"], v3["classification"]) == ("user_activity", 3, "new version")
    assert {"kind": "field_added", "subject": "distinct_models_7d", "breaking": False,
            "detail": "distinct_models_7d int64 = count_distinct(model)", "classification": "additive"} in v3["diff"]
    assert list(workflow.history(again, "user_activity")["object"]) == ["user_activity", "user_activity_v3"]


def test_breaking_change_in_place_is_refused_and_nothing_is_applied(settings):
    runtime = Runtime(settings)
    workflow.apply(runtime)
    entries = len(workflow.history(runtime))
    shorter = replace(V2, ttl=timedelta(days=3))
    with pytest.raises(BreakingChangeError, match="'user_activity'.*ttl shorter") as refused:
        workflow.apply(runtime, specs=[shorter, V3, REALTIME], user="carol")
    assert [v.name for v in refused.value.plan.refused] == ["user_activity"]
    assert refused.value.plan.refused[0].migration.new == "user_activity_v4"
    assert Runtime(settings).feast.get_feature_view("user_activity").ttl == timedelta(days=7)
    assert len(workflow.history(runtime)) == entries


def test_cli_plan_and_apply_exit_2_and_materializations_refuse_when_code_would_break_the_registry(settings):
    # The registry holds user_activity with one more field than the code: applying the code would drop it.
    write_sessions(settings.sessions_path, pd.concat([generate_day(date(2026, 5, d), 40) for d in range(1, 11)]))
    workflow.apply(Runtime(settings), specs=[ADDED, V3, REALTIME])

    plan = cli(settings, "plan")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "feature view user_activity (v2): refused" in plan.stdout
    assert "- distinct_models_7d int64  [field removed: breaking]" in plan.stdout
    assert "declare the change as version 4" in plan.stdout and "user_activity_v4" in plan.stdout
    assert "feature view user_realtime (v1): unchanged" in plan.stdout

    if settings.profile == "embedded":  # the other commands are profile-agnostic: once is enough
        apply = cli(settings, "apply")
        assert apply.returncode == 2 and "nothing was applied" in apply.stderr
        history = cli(settings, "history", "--view", "user_activity")
        assert history.returncode == 0, history.stderr
        assert " apply      create  user_activity v2 (new view)" in history.stdout
        assert " apply      create  user_activity_v3 v3 (new version)" in history.stdout
        remove = cli(settings, "remove", "user_activity", "--version", "2")
        assert remove.returncode == 1 and "still declared in code" in remove.stderr
    else:
        with pytest.raises(BreakingChangeError, match="nothing was applied"):
            fp.FeaturePlatform(settings).apply()
    fv = Runtime(settings).feast.get_feature_view("user_activity")
    assert "distinct_models_7d" in [f.name for f in fv.features]  # untouched

    with pytest.raises(MaterializationError, match="breaking way in place"):
        fp.FeaturePlatform(settings).materialize("user_activity", D1)


def test_additive_change_applied_in_place_end_to_end(settings, monkeypatch):
    write_sessions(settings.sessions_path, pd.concat([generate_day(date(2026, 5, d), 40) for d in range(1, 11)]))
    fp.FeaturePlatform(settings).materialize("user_activity", D1)  # the registry gets v2 (auto-apply)

    monkeypatch.setitem(all_specs(), "user_activity", ADDED)  # the next version of the code
    monkeypatch.setattr(runtimes, "_runtimes", {})  # ... runs in a new code-server process
    platform = fp.FeaturePlatform(settings)
    plan = platform.plan()
    view = plan.view("user_activity")
    assert view.action == UPDATE and [(c.kind, c.subject) for c in view.changes] == [
        ("field_added", "distinct_models_7d")]
    assert f"--start {D1} --end {D1}" in view.notes[0]
    assert platform.apply(user="dave").view("user_activity").action == UPDATE
    assert platform.history("user_activity").iloc[-1][["action", "classification", "user"]].tolist() == [
        "update", "additive", "dave"]

    platform.materialize("user_activity", D2)
    table = platform.offline_table("user_activity", D1, D2)
    d1_end = pd.Timestamp(D2, tz="UTC")  # partition D1's feature timestamp
    old, new = table[table["event_timestamp"] == d1_end], table[table["event_timestamp"] > d1_end]
    assert old["distinct_models_7d"].isna().all() and len(old)  # written before the field existed
    assert new["distinct_models_7d"].notna().all() and (new["distinct_models_7d"] >= 1).any()

    users = new["user_id"].head(3).tolist()
    entity_df = pd.DataFrame({"user_id": users * 2, "event_timestamp": [pd.Timestamp(D2, tz="UTC") + pd.Timedelta(
        hours=1)] * 3 + [pd.Timestamp(D2, tz="UTC") + pd.Timedelta(days=1, hours=1)] * 3})
    joined = platform.training_set(entity_df, ["user_activity:distinct_models_7d", "user_activity:sessions_7d"])
    assert joined["distinct_models_7d"].iloc[:3].isna().all()  # as of D1's partition: not computed then
    assert joined["distinct_models_7d"].iloc[3:].tolist() == new.set_index("user_id").loc[
        users, "distinct_models_7d"].tolist()
    online = platform.online_features(["user_activity:distinct_models_7d"], [{"user_id": u} for u in users],
                                      with_metadata=True)
    assert online["distinct_models_7d__status"].isin(["present", "expired"]).all()
