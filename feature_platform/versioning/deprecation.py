"""Deprecated feature views: readers are warned, with the spec's message (e.g. "use user_activity_v3")."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from feature_platform.spec import FeatureViewSpec


class FeatureViewDeprecationWarning(UserWarning):
    """A read touched a deprecated feature view. A UserWarning, so Python shows it by default."""


def warn_deprecated(specs: Iterable[FeatureViewSpec], stacklevel: int = 3) -> list[str]:
    """Warn once per deprecated view among `specs`; returns their names."""
    names = []
    for spec in specs:
        if spec.deprecated:
            names.append(spec.name)
            warnings.warn(
                FeatureViewDeprecationWarning(
                    f"feature view {spec.name!r} (version {spec.version} of {spec.family_name!r}) is deprecated: "
                    f"{spec.deprecated}"),
                stacklevel=stacklevel,
            )
    return names
