"""Spec -> Feast objects (Entity, source, FeatureView, FeatureService, OnDemandFeatureView), for the profile's
offline store."""

from __future__ import annotations

import warnings

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
    PushSource,
    RequestSource,
)
from feast import Field as FeastField
from feast.data_source import DataSource

from feature_platform.backends import build_backends
from feature_platform.config import Settings
from feature_platform.derive.description import describe, description_tag, request_view_description
from feature_platform.dtypes import feast_type, value_type
from feature_platform.spec import FeatureServiceSpec, FeatureViewSpec, RequestFeatureViewSpec
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP


def feast_entity(spec: FeatureViewSpec) -> Entity:
    e = spec.entity
    return Entity(name=e.name, join_keys=[e.join_key], value_type=value_type(e.dtype), description=e.description)


def feast_source(spec: FeatureViewSpec, settings: Settings) -> DataSource:
    """The view's offline table as a Feast batch source: a Parquet directory or a PostgreSQL table."""
    common = dict(
        name=f"{spec.name}_offline",
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description=f"Offline table of feature view {spec.name}",
    )
    return build_backends(settings).batch_source(spec, **common)


def feast_feature_view(spec: FeatureViewSpec, settings: Settings) -> FeatureView:
    source = feast_source(spec, settings)
    if spec.push_source is not None:
        # Pushed rows land in the same offline table the batch source reads.
        source = PushSource(name=spec.push_source, batch_source=source, description=f"Events pushed to {spec.name}")
    return FeatureView(
        name=spec.name,
        entities=[feast_entity(spec)],
        ttl=spec.ttl,
        schema=[FeastField(name=f.name, dtype=feast_type(f.dtype), description=f.description) for f in spec.fields],
        source=source,
        online=True,
        description=spec.description,
        # The spec's full description rides along, so `feature-platform plan` can compare code with the registry.
        tags={**spec.all_tags, **description_tag(describe(spec))},
        owner=f"team:{spec.owner}",
    )


def feast_feature_service(service: FeatureServiceSpec, views: dict[str, FeatureView]) -> FeatureService:
    by_view: dict[str, list[str]] = {}
    for ref in service.features:
        view, _, feature = ref.partition(":")
        by_view.setdefault(view, []).append(feature)
    return FeatureService(
        name=service.name,
        features=[views[view][features] for view, features in by_view.items()],
        description=service.description,
        tags={"version": str(service.version)},
        owner=f"team:{service.owner}",
    )


# The transformation Feast runs for a request view: its source text is what Feast keeps in the registry and
# executes; it calls the platform's own function with the repository that declares the view (so feature_platform
# and the repository must be importable where Feast evaluates it).
_TRANSFORMATION = """def {name}(features_df):
    from feature_platform.request_time import feast_transformation
    return feast_transformation({name!r}, features_df, {repo!r})
"""


def feast_on_demand_view(spec: RequestFeatureViewSpec, views: dict[str, FeatureView],
                         settings: Settings) -> OnDemandFeatureView:
    """A request view as Feast's on-demand feature view: its input views' features and a request source of its
    request fields in, its features out, computed by the platform's function."""
    by_view: dict[str, list[str]] = {}
    for ref in spec.inputs:
        view, _, feature = ref.partition(":")
        by_view.setdefault(view, []).append(feature)
    sources: list = [views[view][features] for view, features in by_view.items()]
    if spec.request_fields:
        sources.append(RequestSource(name=f"{spec.name}_request", schema=[
            FeastField(name=f.name, dtype=feast_type(f.dtype), description=f.description) for f in spec.request_fields]))
    source = _TRANSFORMATION.format(name=spec.name, repo=settings.repo_location)
    namespace: dict = {}
    exec(source, namespace)  # noqa: S102 - our own template: the callable is the text Feast will run
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
        return OnDemandFeatureView(
            name=spec.name,
            sources=sources,
            # No descriptions: Feast's apply compares these fields with the ones it infers by running the function.
            schema=[FeastField(name=f.name, dtype=feast_type(f.dtype)) for f in spec.features],
            mode="pandas",
            udf=namespace[spec.name],
            udf_string=source,
            description=spec.description,
            tags=description_tag(request_view_description(spec)),
            owner=f"team:{spec.owner}",
        )


def feast_objects(specs, settings: Settings, services=(), request_views=()) -> list:
    """Everything to `FeatureStore.apply`: entities (deduplicated by name), feature views, feature services and
    the on-demand feature views of the request views whose inputs are among `specs`."""
    entities = {s.entity.name: feast_entity(s) for s in specs}
    views = {s.name: feast_feature_view(s, settings) for s in specs}
    on_demand = [feast_on_demand_view(r, views, settings) for r in request_views
                 if all(ref.partition(":")[0] in views for ref in r.inputs)]
    return [*entities.values(), *views.values(), *(feast_feature_service(f, views) for f in services), *on_demand]
