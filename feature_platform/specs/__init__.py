"""Declarations: one module per feature view (a `FeatureViewSpec`), plus feature services and
training sets. Every instance found at module level is registered; adding a view = adding a module."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from feature_platform.errors import UnknownFeatureViewError, shorten
from feature_platform.spec import (
    AccessSpec,
    FeatureServiceSpec,
    FeatureViewSpec,
    RequestFeatureViewSpec,
    TrainingSetSpec,
)


@cache
def _declared(kind: type) -> dict[str, object]:
    found: dict[str, object] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, kind):
                if value.name in found and found[value.name] is not value:
                    raise ValueError(f"{kind.__name__} {value.name!r} is declared twice (module {info.name})")
                found[value.name] = value
    return dict(sorted(found.items()))


def all_specs() -> dict[str, FeatureViewSpec]:
    """Every feature view, by name (each version of a view is a view of its own)."""
    specs: dict[str, FeatureViewSpec] = _declared(FeatureViewSpec)  # type: ignore[assignment]
    check_versions(specs.values())
    return specs


def check_versions(specs) -> None:
    """Two specs of one family may not claim the same version."""
    seen: dict[tuple[str, int], str] = {}
    for spec in specs:
        key = (spec.family_name, spec.version)
        if key in seen and seen[key] != spec.name:
            raise ValueError(f"feature views {seen[key]!r} and {spec.name!r} both declare version {spec.version} "
                             f"of {spec.family_name!r}")
        seen[key] = spec.name


def all_feature_services() -> dict[str, FeatureServiceSpec]:
    return _declared(FeatureServiceSpec)  # type: ignore[return-value]


def all_request_views() -> dict[str, RequestFeatureViewSpec]:
    """Request-time feature views, by name (their names may not clash with stored views')."""
    views: dict[str, RequestFeatureViewSpec] = _declared(RequestFeatureViewSpec)  # type: ignore[assignment]
    clashes = sorted(set(views) & set(all_specs()))
    if clashes:
        raise ValueError(f"request feature view(s) {clashes} have the name of a stored feature view")
    return views


def all_access() -> dict[str, AccessSpec]:
    """The serving permissions, by name."""
    return _declared(AccessSpec)  # type: ignore[return-value]


def all_training_sets() -> dict[str, TrainingSetSpec]:
    return _declared(TrainingSetSpec)  # type: ignore[return-value]


def get_spec(name: str) -> FeatureViewSpec:
    try:
        return all_specs()[name]
    except KeyError:
        raise UnknownFeatureViewError(
            f"unknown feature view {shorten(name)}; known views: {', '.join(sorted(all_specs()))}"
        ) from None
