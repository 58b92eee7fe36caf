"""The single Dagster Definitions of the platform: every asset is built from a spec by a factory."""

import dagster as dg

from feature_platform.config import Settings
from feature_platform.defs.feature_views import build_feature_view_asset
from feature_platform.defs.raw_sessions import build_raw_sessions_asset
from feature_platform.defs.resources import platform_resource_from_env, resources_for
from feature_platform.defs.training_sets import build_training_set_assets
from feature_platform.specs import all_specs, all_training_sets


def build_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    batch_views = [spec for spec in all_specs().values() if spec.aggregation is not None]
    return [
        build_raw_sessions_asset(settings),
        *(build_feature_view_asset(spec, settings) for spec in batch_views),
        *(asset for spec in all_training_sets().values() for asset in build_training_set_assets(spec)),
    ]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    from_env = settings is None
    settings = settings or Settings.from_env()
    platform = platform_resource_from_env() if from_env else None
    return dg.Definitions(assets=build_assets(settings), resources=resources_for(settings, platform))


defs = build_definitions()
