"""Feature references to output columns: what training sets, online reads, serving and the skew check share.

`view:feature` references, or a feature service name, resolved against the repository's definitions and checked,
before any store or engine is touched. A module of its own, so the online path and the skew check reach it
without importing training sets (and training sets without importing serving).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feature_platform.errors import UnknownFeatureError, shorten
from feature_platform.repo import Repository
from feature_platform.vocabulary import full_feature_name


@dataclass(frozen=True)
class FeatureColumn:
    view: str
    feature: str
    column: str  # output column name


def references(repo: Repository, features: str | Sequence[str]) -> list[str]:
    """A feature service name or a list of references, as a list of references."""
    if isinstance(features, str):
        services = repo.feature_services
        if features not in services:
            raise UnknownFeatureError(
                f"{shorten(features)} is not a feature service (known: {', '.join(services) or 'none'}); "
                "pass a list of 'view:feature' references or a service name")
        return list(services[features].features)
    if not isinstance(features, Sequence):
        raise UnknownFeatureError(f"features must be a list of 'view:feature' references or a feature service name, "
                                  f"not {type(features).__name__}")
    return list(features)


def check_unique_columns(names: Sequence[str]) -> None:
    """Output column names must not repeat (two views' features of the same name, without prefixes)."""
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise UnknownFeatureError(
            f"feature name(s) {shorten(clashes, 300)} appear more than once; pass full_feature_names=True to prefix view names")


def resolve_features(repo: Repository, features: str | Sequence[str],
                     full_feature_names: bool = False) -> list[FeatureColumn]:
    """`view:feature` references, or a feature service name, of `repo`, as output columns (checked)."""
    features = references(repo, features)
    if not features:
        raise UnknownFeatureError("features must be a non-empty list of 'view:feature' references")
    columns: list[FeatureColumn] = []
    for ref in features:
        view, sep, feature = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if not sep:
            raise UnknownFeatureError(f"feature reference {shorten(ref)} must look like 'view:feature'")
        spec = repo.view(view)
        if feature not in spec.feature_names:
            raise UnknownFeatureError(
                f"feature view {view!r} has no feature {shorten(feature)}; it has {', '.join(spec.feature_names)}"
            )
        columns.append(FeatureColumn(view, feature, full_feature_name(view, feature) if full_feature_names else feature))
    check_unique_columns([c.column for c in columns])
    return columns

