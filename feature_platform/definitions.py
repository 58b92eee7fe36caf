"""The single Dagster Definitions of the platform: every asset is built from a spec by a factory.

Built when loaded, never on import: Dagster loads `load_definitions` (`dagster dev -m feature_platform.definitions`)
or the attribute `defs` (workspace.yaml, the code server), each built from the FEATURE_PLATFORM_* environment at
that moment; code with settings of its own calls `build_definitions(settings)`.
"""


from pathlib import Path

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
from feature_platform.defs.raw_sources import build_source_sensor, build_source_spec
from feature_platform.defs.resources import resources_for
from feature_platform.defs.training_sets import build_training_set_assets
from feature_platform.repo import Repository, load_repository
from feature_platform.training import resolve_features


def build_assets_and_sensors(settings: Settings) -> tuple[list, list]:
    """Assets (with the checks that run beside their materializations) and sensors, of the settings' repository."""
    repo = load_repository(settings.repo_location)
    read = {spec.aggregation.source for spec in repo.views.values() if spec.aggregation is not None}
    sources = [repo.sources[name] for name in sorted(read)]
    assets: list = [build_source_spec(source, settings, repo) for source in sources]
    sensors: list = [build_source_sensor(sources, settings)] if sources else []
    for spec in repo.views.values():
        if spec.aggregation is not None:
            assets.append(build_feature_view_asset(spec, settings))
        else:
            view_assets, view_sensors = build_push_view_defs(spec, settings)
            assets += view_assets
            sensors += view_sensors
    for spec in repo.training_sets.values():
        assets += build_training_set_assets(spec, repo)
    return assets, sensors


def _views_of(repo: Repository, training_set):
    return list({c.view: c for c in resolve_features(repo, training_set.feature_service)}.values())


def build_assets(settings: Settings) -> list:
    return build_assets_and_sensors(settings)[0]


def build_definitions(settings: Settings | None = None, *, repo: str | Path | None = None) -> dg.Definitions:
    """The Dagster definitions of a feature repository: its sources, views, checks, sensors and training sets.

    `settings` default to `Settings.from_env()`, read now; `repo` (a directory, a .py file or a module name)
    overrides their repository, so a repository's own `definitions.py` is
    `defs = feature_platform.build_definitions(repo=Path(__file__).parent)`, mergeable with a team's other
    definitions (`dg.Definitions.merge`)."""
    settings = settings or Settings.from_env()
    if repo is not None:
        settings = settings.with_(repo=str(Path(repo).absolute()) if Path(str(repo)).exists() else str(repo))
    repository = load_repository(settings.repo_location)
    assets, sensors = build_assets_and_sensors(settings)
    asset_checks = [a for a in assets if isinstance(a, dg.AssetChecksDefinition)]  # e.g. of pushed views
    assets = [a for a in assets if not isinstance(a, dg.AssetChecksDefinition)]
    freshness = [build_freshness_check(spec) for spec in repository.views.values()]
    freshness += [
        build_upstream_freshness_check(dg.AssetKey(ts.name), [repository.view(c.view) for c in _views_of(repository, ts)])
        for ts in repository.training_sets.values()
    ]
    partition_checks, partition_sensor = build_partition_freshness(
        [a for a in assets if isinstance(a, dg.AssetsDefinition) and a.partitions_def is not None
         and isinstance(a.partitions_def, dg.TimeWindowPartitionsDefinition) and a.key.path[0] in repository.views])
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
