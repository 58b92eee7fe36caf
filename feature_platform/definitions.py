"""The single Dagster Definitions of the platform: every asset is built from a spec by a factory."""

import dagster as dg

from feature_platform.config import Settings
from feature_platform.defs.feature_views import build_feature_view_asset
from feature_platform.defs.push_views import build_push_view_defs
from feature_platform.defs.raw_sessions import build_raw_sessions_asset
from feature_platform.defs.resources import platform_resource_from_env, resources_for
from feature_platform.defs.training_sets import build_training_set_assets
from feature_platform.specs import all_specs, all_training_sets


def build_assets_and_sensors(settings: Settings) -> tuple[list, list]:
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


def build_assets(settings: Settings) -> list:
    return build_assets_and_sensors(settings)[0]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    from_env = settings is None
    settings = settings or Settings.from_env()
    platform = platform_resource_from_env() if from_env else None
    assets, sensors = build_assets_and_sensors(settings)
    return dg.Definitions(assets=assets, sensors=sensors, resources=resources_for(settings, platform))


defs = build_definitions()
