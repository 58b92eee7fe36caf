"""Classification of each kind of change (pure: specs described and diffed, no registry), and the
naming rules of side-by-side versions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from chat_activity.user_activity import SPEC as V2
from chat_activity.user_activity_v3 import SPEC as V3
from chat_activity.user_realtime import SPEC as REALTIME

from feature_platform.derive.description import DESCRIPTION_TAG, describe
from feature_platform.repo import check_versions
from feature_platform.spec import Agg, FeatureViewSpec, Field, SpecError
from feature_platform.versioning.changes import diff
from feature_platform.versioning.plan import CREATE, REFUSED, UNCHANGED, UPDATE, make_plan


def changes(old: FeatureViewSpec, new: FeatureViewSpec) -> list[tuple[str, str, str]]:
    return [(c.kind, c.subject, c.classification) for c in diff(describe(old), describe(new))]


def with_field(spec: FeatureViewSpec, index: int, **changes) -> FeatureViewSpec:
    fields = list(spec.fields)
    fields[index] = replace(fields[index], **changes)
    return replace(spec, fields=tuple(fields))


def with_agg(spec: FeatureViewSpec, index: int, **changes) -> FeatureViewSpec:
    aggs = list(spec.aggregation.aggs)
    aggs[index] = replace(aggs[index], **changes)
    return replace(spec, aggregation=replace(spec.aggregation, aggs=tuple(aggs)))


def renamed(spec: FeatureViewSpec, index: int, new_name: str, hint: bool) -> FeatureViewSpec:
    fields, aggs = list(spec.fields), list(spec.aggregation.aggs)
    fields[index] = replace(fields[index], name=new_name, renamed_from=fields[index].name if hint else None)
    aggs[index] = replace(aggs[index], feature=new_name)
    return replace(spec, fields=tuple(fields), aggregation=replace(spec.aggregation, aggs=tuple(aggs)))


def test_identical_specs_have_no_changes():
    assert changes(V2, V2) == []


def test_added_field_is_additive():
    spec = replace(V2, fields=(*V2.fields, Field("x_7d", "int64", ge=0)),
                   aggregation=replace(V2.aggregation, aggs=(*V2.aggregation.aggs, Agg("x_7d", "count", "model"))))
    assert changes(V2, spec) == [("field_added", "x_7d", "additive")]


def test_removed_field_is_breaking():
    spec = replace(V2, fields=V2.fields[:-1], aggregation=replace(V2.aggregation, aggs=V2.aggregation.aggs[:-1]))
    assert changes(V2, spec) == [("field_removed", "total_tokens_7d", "breaking")]


def test_rename_with_hint_is_detected_and_breaking():
    spec = renamed(V2, 2, "messages_7d", hint=True)
    assert changes(V2, spec) == [("field_renamed", "messages_7d", "breaking")]
    (change,) = diff(describe(V2), describe(spec))
    assert change.detail == "messages_sent_7d -> messages_7d"


def test_rename_without_hint_is_a_possible_rename_when_dtype_and_aggregation_match():
    spec = renamed(V2, 2, "messages_7d", hint=False)
    assert changes(V2, spec) == [("possible_rename", "messages_7d", "breaking")]
    # a different aggregation is not a rename: one field removed, another added
    other = with_agg(spec, 2, fn="count")
    assert sorted(changes(V2, other)) == [("field_added", "messages_7d", "additive"),
                                          ("field_removed", "messages_sent_7d", "breaking")]


def test_dtype_change_is_breaking():
    assert changes(V2, with_field(V2, 1, dtype="float64")) == [("dtype_changed", "avg_session_duration_sec", "breaking")]


@pytest.mark.parametrize(("field_changes", "expected"), [
    ({"ge": None}, "constraint_loosened"),            # bound dropped
    ({"ge": -1.0}, "constraint_loosened"),            # bound widened
    ({"ge": 1.0}, "constraint_tightened"),            # bound narrowed
    ({"le": 1000.0}, "constraint_tightened"),         # bound added
    ({"nullable": True}, "constraint_loosened"),
])
def test_constraints_looser_are_additive_tighter_are_breaking(field_changes, expected):
    ((kind, subject, classification),) = changes(V2, with_field(V2, 0, **field_changes))
    assert (kind, subject) == (expected, "sessions_7d")
    assert classification == ("additive" if expected == "constraint_loosened" else "breaking")


def test_allowed_values_superset_is_looser_subset_is_tighter():
    a = with_field(V2, 4, isin=("haiku", "opus"))
    assert changes(a, with_field(V2, 4, isin=("haiku", "opus", "sonnet"))) == [
        ("constraint_loosened", "preferred_model", "additive")]
    assert changes(a, with_field(V2, 4, isin=("haiku",))) == [("constraint_tightened", "preferred_model", "breaking")]
    assert changes(V2, with_field(V2, 0, nullable=True)) != changes(with_field(V2, 0, nullable=True), V2)


def test_ttl_longer_is_additive_shorter_is_breaking():
    assert changes(V2, replace(V2, ttl=timedelta(days=14))) == [("ttl_longer", "ttl", "additive")]
    assert changes(V2, replace(V2, ttl=timedelta(days=3))) == [("ttl_shorter", "ttl", "breaking")]


def test_entity_source_and_aggregation_semantics_are_breaking():
    from feature_platform.spec import Entity

    other_entity = replace(V2, entity=Entity(name="account", join_key="account_id"))
    assert changes(V2, other_entity) == [("entity_changed", "entity", "breaking")]
    other_source = replace(V2, aggregation=replace(V2.aggregation, source="chats"))
    assert changes(V2, other_source) == [("source_changed", "source", "breaking")]
    longer_window = replace(V2, aggregation=replace(V2.aggregation, window=timedelta(days=14)))
    assert changes(V2, longer_window) == [("aggregation_changed", "window", "breaking")]
    mean_to_max = with_agg(V2, 1, fn="max")
    assert changes(V2, mean_to_max) == [("aggregation_changed", "avg_session_duration_sec", "breaking")]
    closing_value = with_agg(V2, 4, empty="idle")
    assert changes(V2, closing_value) == [("aggregation_changed", "preferred_model", "breaking")]


def test_metadata_and_deprecation_are_additive_version_change_in_place_is_breaking():
    assert changes(V2, replace(V2, description="new words", owner="ml")) == [
        ("metadata_changed", "description", "additive"), ("metadata_changed", "owner", "additive")]
    assert changes(V2, replace(V2, freshness_sla=timedelta(hours=30))) == [
        ("metadata_changed", "freshness_sla", "additive")]
    assert changes(V2, replace(V2, deprecated="use user_activity_v3")) == [("deprecated", "deprecated", "additive")]
    assert changes(V2, replace(V2, version=3)) == [("version_changed", "version", "breaking")]


def test_pushed_view_rename_heuristic_uses_the_description():
    spec = with_field(REALTIME, 0, name="session_messages")
    assert changes(REALTIME, spec) == [("possible_rename", "session_messages", "breaking")]


def test_registry_entries_without_the_platform_description_compare_only_what_feast_records():
    registry_only = {"name": "user_activity", "fields": [{"name": f.name, "dtype": f.dtype} for f in V2.fields],
                     "ttl_seconds": 7 * 86400}
    assert diff(registry_only, describe(V2)) == []
    assert DESCRIPTION_TAG.startswith("feature_platform")


# --- the plan over descriptions ---------------------------------------------------------------


def code_and_registry(code_specs, registered_specs):
    return ({s.name: describe(s) for s in code_specs}, {s.name: describe(s) for s in registered_specs})


def test_plan_refuses_breaking_in_place_and_plans_the_migration():
    from chat_activity.churn import CHURN_FEATURES, CHURN_TRAINING_SET

    broken = replace(V2, ttl=timedelta(days=3))
    code, registered = code_and_registry([broken, V3], [V2, V3])
    days = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]
    plan = make_plan(code, registered, {"churn_features": CHURN_FEATURES}, {"churn_training_set": CHURN_TRAINING_SET},
                     partitions_of=lambda name: days)
    v2 = plan.view("user_activity")
    assert v2.action == REFUSED and plan.refused == [v2]
    assert v2.migration.new == "user_activity_v4" and v2.migration.new_version == 4  # v3 exists already
    assert v2.migration.backfill == days
    assert v2.migration.feature_services == ["churn_features"]
    assert v2.migration.training_sets == ["churn_training_set"]
    text = plan.render()
    assert "feature-platform materialize --view user_activity_v4 --start 2026-01-01 --end 2026-01-03" in text
    assert "ttl: 7d -> 3d  [ttl shorter: breaking]" in text
    assert plan.view("user_activity_v3").action == UNCHANGED


def test_plan_of_a_new_version_shows_its_changes_from_the_previous_version():
    code, registered = code_and_registry([V2, V3], [V2])
    plan = make_plan(code, registered, {}, {}, partitions_of=lambda name: [date(2026, 1, 5)])
    v3 = plan.view("user_activity_v3")
    assert v3.action == CREATE and v3.previous == "user_activity" and v3.classification == "new version"
    assert [(c.kind, c.subject) for c in v3.changes if c.kind != "metadata_changed"] == [
        ("field_added", "distinct_models_7d")]
    assert v3.migration.declared and v3.migration.backfill == [date(2026, 1, 5)]
    assert not plan.refused and plan.has_changes


def test_plan_of_an_additive_change_in_place_notes_the_partitions_to_refill():
    added = replace(V2, fields=(*V2.fields, Field("x_7d", "int64", ge=0)),
                    aggregation=replace(V2.aggregation, aggs=(*V2.aggregation.aggs, Agg("x_7d", "count", "model"))))
    code, registered = code_and_registry([added], [V2])
    plan = make_plan(code, registered, {}, {}, partitions_of=lambda name: [date(2026, 1, 1), date(2026, 1, 2)])
    view = plan.view("user_activity")
    assert view.action == UPDATE and view.classification == "additive"
    assert "have no value for x_7d until re-materialized" in view.notes[0]


def test_registered_view_missing_from_code_is_reported_not_removed():
    code, registered = code_and_registry([V3], [V2, V3])
    plan = make_plan(code, registered, {}, {})
    assert plan.view("user_activity").action == "not in code"
    assert "feature-platform remove user_activity" in plan.view("user_activity").notes[0]
    assert not plan.has_changes


# --- naming of side-by-side versions ----------------------------------------------------------


def test_later_versions_must_be_named_family_v_version():
    assert V3.name == V2.next_version_name(3) == "user_activity_v3" and V3.family_name == "user_activity"
    with pytest.raises(SpecError, match="must be named 'user_activity_v4'"):
        replace(V3, version=4)
    with pytest.raises(SpecError, match="renamed_from"):
        with_field(V2, 0, renamed_from="messages_sent_7d")


def test_two_specs_may_not_claim_the_same_version_of_a_family():
    with pytest.raises(ValueError, match="both declare version 2"):
        check_versions([V2, replace(V3, name="user_activity_v2", version=2)])


def test_deprecation_and_hints_do_not_change_the_fingerprint():
    assert replace(V2, deprecated="use user_activity_v3").fingerprint() == V2.fingerprint()
    assert V3.fingerprint() != V2.fingerprint()
