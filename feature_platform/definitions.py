"""The single Dagster Definitions of the platform: every asset is built from a spec by a factory."""

import dagster as dg

from feature_platform.config import Settings
from feature_platform.defs.feature_views import build_feature_view_asset
from feature_platform.defs.raw_sessions import build_raw_sessions_asset
from feature_platform.defs.resources import platform_resource_from_env
from feature_platform.specs import all_specs


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    batch_views = [spec for spec in all_specs().values() if spec.aggregation is not None]
    return dg.Definitions(
        assets=[build_raw_sessions_asset(settings), *(build_feature_view_asset(s, settings) for s in batch_views)],
        resources={"platform": platform_resource_from_env()},
    )


defs = build_definitions()
