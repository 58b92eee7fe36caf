"""The single Dagster Definitions of the platform: every asset is built from a spec by a factory.

Built when loaded, never on import: Dagster loads `load_definitions` (`dagster dev -m feature_platform.definitions`)
or the attribute `defs` (workspace.yaml, the code server), each built from the FEATURE_PLATFORM_* environment at
that moment; code with settings of its own calls `build_definitions(settings)`.
"""


import dagster as dg

from feature_platform.config import Settings
from feature_platform.defs.alerts import feature_platform_alerts
from feature_platform.defs.automation import automation_sensor
from feature_platform.defs.executors import executor_for
from feature_platform.defs.feature_views import build_feature_view_asset
from feature_platform.defs.freshness_checks import (
    build_freshness_check,
    build_freshness_schedule,
    build_partition_freshness,
    build_upstream_freshness_check,
)
from feature_platform.defs.push_views import build_push_view_defs
from feature_platform.defs.raw_sessions import build_raw_sessions_asset
from feature_platform.defs.resources import resources_for
from feature_platform.defs.training_sets import build_training_set_assets
from feature_platform.specs import all_specs, all_training_sets, get_spec
from feature_platform.training import resolve_features


def build_assets_and_sensors(settings: Settings) -> tuple[list, list]:
    """Assets (with the checks that run beside their materializations) and sensors."""
    assets: list = [build_raw_sessions_asset(settings)]
    sensors: list = []
    for spec in all_specs().values():
        if spec.aggregation is not None:
            assets.append(build_feature_view_asset(spec, settings))
        else:
            view_assets, view_sensors = build_push_view_defs(spec, settings)
            assets += view_assets
            sensors += view_sensors
    for spec in all_training_sets().values():
        assets += build_training_set_assets(spec)
    return assets, sensors


def _views_of(training_set):
    return list({c.view: c for c in resolve_features(training_set.feature_service)}.values())


def build_assets(settings: Settings) -> list:
    return build_assets_and_sensors(settings)[0]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """The definitions of `settings` (default: `Settings.from_env()`, read now)."""
    settings = settings or Settings.from_env()
    assets, sensors = build_assets_and_sensors(settings)
    asset_checks = [a for a in assets if isinstance(a, dg.AssetChecksDefinition)]  # e.g. of pushed views
    assets = [a for a in assets if not isinstance(a, dg.AssetChecksDefinition)]
    freshness = [build_freshness_check(spec) for spec in all_specs().values()]
    freshness += [
        build_upstream_freshness_check(dg.AssetKey(ts.name), [get_spec(c.view) for c in _views_of(ts)])
        for ts in all_training_sets().values()
    ]
    partition_checks, partition_sensor = build_partition_freshness(
        [a for a in assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def is not None
         and isinstance(a.partitions_def, dg.TimeWindowPartitionsDefinition) and a.key.path[0] in all_specs()])
    automated = [k for a in assets if isinstance(a, dg.AssetsDefinition)
                 for k, condition in a.automation_conditions_by_key.items() if condition is not None]
    if automated:
        sensors.append(automation_sensor(automated))
    return dg.Definitions(
        assets=assets, asset_checks=[*asset_checks, *freshness, *partition_checks],
        sensors=[*sensors, partition_sensor, feature_platform_alerts],
        schedules=[build_freshness_schedule(freshness)], resources=resources_for(settings),
        # In process by default: a run is one step, parallelism comes from concurrent runs (defs/executors.py).
        executor=executor_for(settings),
    )


@dg.definitions
def load_definitions() -> dg.Definitions:
    """What Dagster loads from this module: the definitions of the environment, read when it loads them."""
    return build_definitions()


def __getattr__(name: str):
    """`defs` (workspace.yaml's attribute, `from feature_platform.definitions import defs`): built from the
    environment on first use, then kept."""
    if name == "defs":
        defs = globals()["defs"] = build_definitions()
        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
