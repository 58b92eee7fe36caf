"""Views keep themselves fresh (issue 21 item 5): Dagster's automation, evaluated with a controlled clock, requests a
daily view's new partition once every raw day of its window is recorded, and not before; once per day."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pytest

from feature_platform.definitions import build_definitions
from feature_platform.defs.automation import AUTOMATION_SENSOR
from feature_platform_tests.example_repo import all_specs
from feature_platform_tests.helpers import make_embedded_settings

DAY = date(2026, 3, 20)  # the day that ends at the midnight the tests step over
VIEW = dg.AssetKey("user_activity")
RAW = dg.AssetKey("raw_sessions")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)


class Clock:
    """Automation ticks at chosen times, each starting from the previous tick's cursor (as the daemon does)."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance, self.cursor = defs, instance, None

    def tick(self, when: datetime) -> dict[dg.AssetKey, set[str]]:
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, evaluation_time=when,
                                                   cursor=self.cursor)
        self.cursor = result.cursor
        return {key: set(result.get_requested_partitions(key)) for key in (VIEW, RAW)
                if result.get_num_requested(key)}


def record(instance: dg.DagsterInstance, key: dg.AssetKey, days) -> None:
    for day in days:
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day.isoformat()))


@pytest.fixture
def external(tmp_path):
    """Definitions on an external sessions log, the partitions starting a month before DAY."""
    settings = make_embedded_settings(tmp_path).with_(partitions_start=DAY - timedelta(days=30))
    assert not settings.uses_generated_sessions
    with dg.instance_for_test() as instance:
        yield Clock(build_definitions(settings), instance)


def test_the_new_day_is_requested_once_its_raw_window_is_complete_and_not_before(external):
    clock, window = external, all_specs()["user_activity"].aggregation.window.days
    record(clock.instance, RAW, [DAY - timedelta(days=i) for i in range(1, window + 1)])  # all but DAY itself
    assert clock.tick(at(DAY, 12)) == {}  # the first evaluation only starts the cursor
    assert clock.tick(at(DAY, 23, 59)) == {}  # DAY is not over: its partition does not exist yet

    # Past midnight DAY is the newest partition, but its own raw day is not recorded: nothing is requested
    # (an external log's day is never requested either: only its owner knows when it is complete).
    assert clock.tick(at(DAY + timedelta(days=1), 0, 5)) == {}
    assert clock.tick(at(DAY + timedelta(days=1), 0, 30)) == {}
    record(clock.instance, RAW, [DAY])
    assert clock.tick(at(DAY + timedelta(days=1), 1)) == {VIEW: {DAY.isoformat()}}
    assert clock.tick(at(DAY + timedelta(days=1), 2)) == {}  # once per day
    record(clock.instance, VIEW, [DAY])

    # The next midnight: the next day, again only once its raw day is there.
    assert clock.tick(at(DAY + timedelta(days=2), 0, 5)) == {}
    record(clock.instance, RAW, [DAY + timedelta(days=1)])
    assert clock.tick(at(DAY + timedelta(days=2), 0, 10)) == {VIEW: {(DAY + timedelta(days=1)).isoformat()}}


def test_a_gap_inside_the_window_holds_the_partition_back(external):
    clock = external
    record(clock.instance, RAW, [DAY - timedelta(days=i) for i in range(0, 8) if i != 3])
    clock.tick(at(DAY, 12))
    assert clock.tick(at(DAY + timedelta(days=1), 0, 5)) == {}
    record(clock.instance, RAW, [DAY - timedelta(days=3)])
    assert clock.tick(at(DAY + timedelta(days=1), 3)) == {VIEW: {DAY.isoformat()}}


def test_observing_the_source_records_its_days_and_releases_the_view(tmp_path):
    """Raw days are recorded by observing the source (`observe_sources`: the sensor, or the API), never by the
    platform writing them: the day written last night releases the view's partition once it is observed."""
    import feature_platform as fp
    from feature_platform.demo.generator import write_day

    settings = make_embedded_settings(tmp_path).with_(partitions_start=DAY - timedelta(days=30))
    platform = fp.FeaturePlatform(settings)
    for i in range(1, 9):
        write_day(settings.sessions_path, DAY - timedelta(days=i), 50)
    platform.observe_sources()
    clock = Clock(build_definitions(settings), platform.instance())
    clock.tick(at(DAY, 12))
    assert clock.tick(at(DAY + timedelta(days=1), 0, 5)) == {}  # DAY not written yet
    write_day(settings.sessions_path, DAY, 50)
    assert clock.tick(at(DAY + timedelta(days=1), 0, 10)) == {}  # written, not yet observed
    platform.observe_sources()
    assert clock.tick(at(DAY + timedelta(days=1), 0, 20)) == {VIEW: {DAY.isoformat()}}


def test_batch_views_carry_the_condition_push_views_do_not_and_the_sensor_runs_from_the_start(tmp_path):
    defs = build_definitions(make_embedded_settings(tmp_path))
    graph = defs.resolve_asset_graph()
    for name, spec in all_specs().items():
        condition = graph.get(dg.AssetKey(name)).automation_condition
        assert (condition is not None) == (spec.aggregation is not None), name
    sensor = defs.resolve_sensor_def(AUTOMATION_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    automated = {k for k in graph.materializable_asset_keys if graph.get(k).automation_condition is not None}
    assert sensor.asset_selection.resolve(graph) == automated



def test_a_training_set_opts_in_and_is_rebuilt_after_its_tick_once_its_views_are_updated(tmp_path):
    from feature_platform.definitions import build_assets
    from feature_platform.defs.resources import resources_for
    from feature_platform.defs.training_sets import build_training_set_assets
    from feature_platform_tests.example_repo import EXAMPLE

    settings = make_embedded_settings(tmp_path).with_(partitions_start=DAY - timedelta(days=30))
    churn = EXAMPLE.training_sets["churn_training_set"]
    assert churn.refresh_cron is None  # built on demand unless it opts in
    opted = dataclasses.replace(churn, refresh_cron="0 3 * * *")
    assert opted.fingerprint() != churn.fingerprint()
    keys = {dg.AssetKey(churn.name), dg.AssetKey(f"{churn.name}_labels")}
    assets = [a for a in build_assets(settings) if not (isinstance(a, dg.AssetsDefinition) and set(a.keys) & keys)]
    defs = dg.Definitions(assets=[*assets, *build_training_set_assets(opted, EXAMPLE)], resources=resources_for(settings))
    with dg.instance_for_test() as instance:
        clock = Clock(defs, instance)

        def requested(when: datetime) -> set[dg.AssetKey]:
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=when,
                                                       cursor=clock.cursor)
            clock.cursor = result.cursor
            return {key for key in keys if result.get_num_requested(key)}

        assert requested(at(DAY, 12)) == set()
        assert requested(at(DAY + timedelta(days=1), 3, 5)) == set()  # the tick passed, its view not updated since
        record(instance, VIEW, [DAY])
        assert requested(at(DAY + timedelta(days=1), 3, 10)) == keys  # labels, then the set, in one run
        assert requested(at(DAY + timedelta(days=1), 4)) == set()  # once per tick


def test_a_refresh_cron_must_be_a_cron():
    from feature_platform.spec import SpecError
    from feature_platform_tests.example_repo import EXAMPLE

    with pytest.raises(SpecError, match="refresh_cron must be a 5-field cron"):
        dataclasses.replace(EXAMPLE.training_sets["churn_training_set"], refresh_cron="daily")
