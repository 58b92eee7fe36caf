"""Feature-view specs: one module per view, each exposing `SPEC`. Adding a view = adding a module."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from feature_platform.errors import UnknownFeatureViewError
from feature_platform.spec import FeatureViewSpec


@cache
def all_specs() -> dict[str, FeatureViewSpec]:
    """Every spec in this package, by view name, discovered by module scan."""
    specs: dict[str, FeatureViewSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        spec = getattr(importlib.import_module(f"{__name__}.{info.name}"), "SPEC", None)
        if isinstance(spec, FeatureViewSpec):
            if spec.name in specs:
                raise ValueError(f"feature view {spec.name!r} is declared twice (module {info.name})")
            specs[spec.name] = spec
    return specs


def get_spec(name: str) -> FeatureViewSpec:
    try:
        return all_specs()[name]
    except KeyError:
        raise UnknownFeatureViewError(
            f"unknown feature view {name!r}; known views: {', '.join(sorted(all_specs()))}"
        ) from None
