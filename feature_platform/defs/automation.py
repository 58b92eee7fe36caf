"""Views that keep themselves fresh: Dagster's declarative automation on the daily assets.

After midnight UTC a new daily partition exists (yesterday, the last complete day). A batch view's condition
requests it once every raw day its window reads has been recorded (the raw asset's partitions D-window..D,
through the view's partition mapping), and not before: a raw day arriving late delays the partition instead of
computing it from a partial window. It is requested once per cron tick (`since_last_handled`): a failed run is
not retried in a loop, the next tick or a manual run does it.

The demo's generated raw days are requested on the same tick (the generator writes the day that just ended).
An external sessions log is not: the platform cannot know when a day of someone else's data is complete, so its
raw day counts once recorded (`feature-platform materialize --with-sources`, a run of the raw asset, or the
team's own pipeline that writes it). A training set opts in with its spec's `refresh_cron`.

Conditions are evaluated by `AUTOMATION_SENSOR`, running from the start (declared in code), in the automation
daemon that `dagster dev` and `dagster-daemon run` start (on in the shipped dagster.yaml files).
"""

import dagster as dg

DAILY_CRON = "0 0 * * *"  # midnight UTC: the moment a day's partition becomes the newest one
AUTOMATION_SENSOR = "feature_platform_automation"


def new_day(cron: str = DAILY_CRON) -> dg.AutomationCondition:
    """The newest partition, once per tick of `cron` (until it is requested or materialized)."""
    return (
        dg.AutomationCondition.in_latest_time_window()
        & dg.AutomationCondition.cron_tick_passed(cron, "UTC").since_last_handled()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"new day ({cron} UTC)")


def daily_view_condition(cron: str = DAILY_CRON) -> dg.AutomationCondition:
    """A batch view's newest partition once its whole window of raw days is present."""
    return (
        new_day(cron)
        & ~dg.AutomationCondition.any_deps_missing().with_label("a raw day of the window is missing")
        & ~dg.AutomationCondition.any_deps_in_progress()
    ).with_label(f"daily view ({cron} UTC), its window's raw days complete")


def training_set_condition(cron: str, ignored: list[dg.AssetKey]) -> dg.AutomationCondition:
    """A training set that opted in (`refresh_cron`): once per tick, after every feature view it reads (its deps
    but `ignored`, e.g. the raw source its labels read) has been updated since the tick."""
    return (
        dg.AutomationCondition.cron_tick_passed(cron, "UTC").since_last_handled()
        & dg.AutomationCondition.all_deps_updated_since_cron(cron, "UTC").ignore(dg.AssetSelection.assets(*ignored))
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"training set ({cron} UTC), after its views")


def automation_sensor(keys: list[dg.AssetKey]) -> dg.AutomationConditionSensorDefinition:
    """The sensor evaluating the conditions of `keys`, running as soon as the code location loads."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.assets(*keys),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        description="Requests each daily view's new partition once the raw days of its window are complete.",
    )
