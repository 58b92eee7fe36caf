"""The feature repository: a team's own definitions, found and loaded like a Feast feature repo.

A repository is a directory (or an importable package, or one Python file) whose modules declare sources,
entities, feature views, feature services, training sets, request-time views and access rules as
module-level instances of the `spec` types. `FEATURE_PLATFORM_REPO` names it (a path or a module name); when
it is unset, the example repository shipped with the project (`examples/chat_activity/`) is used, so the
demo runs with no configuration. The installed package declares nothing of its own.

Loading checks the definitions against each other (a view's source is declared, has the columns the view
aggregates and the entity's join key, with dtypes that fit each aggregation) and raises `SpecError` naming
the view, the source and the column, before anything is derived or written.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType

from feature_platform.errors import UnknownFeatureViewError, shorten
from feature_platform.spec import (
    AccessSpec,
    Agg,
    Entity,
    FeatureServiceSpec,
    FeatureViewSpec,
    RequestFeatureViewSpec,
    SourceSpec,
    SpecError,
    TrainingSetSpec,
)

_KINDS = {
    SourceSpec: "sources", Entity: "entities", FeatureViewSpec: "views", FeatureServiceSpec: "feature_services",
    RequestFeatureViewSpec: "request_views", AccessSpec: "access", TrainingSetSpec: "training_sets",
}
_NUMERIC = ("int64", "float32", "float64")


@dataclass(frozen=True)
class Repository:
    """Every definition of one feature repository, by kind and name (sorted by name)."""

    location: str
    directory: Path | None  # where relative source paths start; None for a module without files
    sources: dict[str, SourceSpec] = field(default_factory=dict)
    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[str, FeatureViewSpec] = field(default_factory=dict)
    feature_services: dict[str, FeatureServiceSpec] = field(default_factory=dict)
    request_views: dict[str, RequestFeatureViewSpec] = field(default_factory=dict)
    access: dict[str, AccessSpec] = field(default_factory=dict)
    training_sets: dict[str, TrainingSetSpec] = field(default_factory=dict)

    def view(self, name: str) -> FeatureViewSpec:
        try:
            return self.views[name]
        except (KeyError, TypeError):
            raise UnknownFeatureViewError(
                f"unknown feature view {shorten(name)}; known views: {', '.join(sorted(self.views))}"
            ) from None

    def source(self, name: str) -> SourceSpec:
        try:
            return self.sources[name]
        except KeyError:
            raise SpecError(f"unknown source {shorten(name)}; declared sources: "
                            f"{', '.join(sorted(self.sources)) or 'none'}") from None

    def source_of(self, view: FeatureViewSpec) -> SourceSpec:
        """The declared source a window-aggregated view reads."""
        if view.aggregation is None:
            raise SpecError(f"feature view {view.name!r} is fed by push source {view.push_source!r}, not a raw source")
        return self.sources[view.aggregation.source]


def default_location() -> str:
    """The repository used when `FEATURE_PLATFORM_REPO` is unset: the example shipped with the project."""
    from feature_platform.config import EXAMPLE_REPO

    return str(EXAMPLE_REPO)


@cache
def load_repository(location: str) -> Repository:
    """The repository at `location`: a directory, a `.py` file, or an importable module or package name.
    Loaded once per process (its modules are Python modules); a `SpecError` names what is inconsistent."""
    modules, directory = _import(location)
    found: dict[str, dict[str, object]] = {kind: {} for kind in _KINDS.values()}
    for module in modules:
        for value in vars(module).values():
            kind = _KINDS.get(type(value))
            if kind is None:
                continue
            known = found[kind].get(value.name)
            if known is not None and known is not value:
                raise SpecError(f"{type(value).__name__} {value.name!r} is declared twice in repository {location} "
                                f"(module {module.__name__})")
            found[kind][value.name] = value
    repo = Repository(location=location, directory=directory,
                      **{kind: dict(sorted(values.items())) for kind, values in found.items()})
    check_repository(repo)
    return repo


def check_repository(repo: Repository) -> None:
    """The definitions fit together: views read declared sources' columns with fitting dtypes, versions and
    names do not clash."""
    for view in repo.views.values():
        if view.aggregation is not None:
            _check_view_source(view, repo)
    check_versions(repo.views.values())
    clashes = sorted(set(repo.request_views) & set(repo.views))
    if clashes:
        raise SpecError(f"request feature view(s) {clashes} have the name of a stored feature view")


def check_versions(specs) -> None:
    """Two specs of one family may not claim the same version."""
    seen: dict[tuple[str, int], str] = {}
    for spec in specs:
        key = (spec.family_name, spec.version)
        if key in seen and seen[key] != spec.name:
            raise SpecError(f"feature views {seen[key]!r} and {spec.name!r} both declare version {spec.version} "
                            f"of {spec.family_name!r}")
        seen[key] = spec.name


def _check_view_source(view: FeatureViewSpec, repo: Repository) -> None:
    agg = view.aggregation
    where = f"feature view {view.name!r}"
    source = repo.sources.get(agg.source)
    if source is None:
        raise SpecError(f"{where}: source {agg.source!r} is not declared in repository {repo.location}; declared "
                        f"sources: {', '.join(sorted(repo.sources)) or 'none'}")
    where += f", source {source.name!r}"
    if agg.timestamp_column != source.timestamp_column:
        raise SpecError(f"{where}: timestamp column {agg.timestamp_column!r} is not the source's "
                        f"({source.timestamp_column!r})")
    key = view.entity.join_key
    if key not in source.column_names:
        raise SpecError(f"{where}: the entity's join key {key!r} is not a column of the source "
                        f"(columns: {', '.join(source.column_names)})")
    if source.column(key).dtype != view.entity.dtype:
        raise SpecError(f"{where}: column {key!r} is {source.column(key).dtype}, but entity {view.entity.name!r} "
                        f"has {view.entity.dtype} keys")
    for a in agg.aggs:
        if a.column not in source.column_names:
            raise SpecError(f"{where}: column {a.column!r} (aggregated into {a.feature!r}) is not a column of the "
                            f"source (columns: {', '.join(source.column_names)})")
        problem = _misfit(a, source.column(a.column).dtype, view.field(a.feature).dtype)
        if problem:
            raise SpecError(f"{where}: column {a.column!r}: {problem}")


def _misfit(a: Agg, column: str, feature: str) -> str | None:
    """Why `a.fn` of a `column`-typed column cannot give a `feature`-typed feature (None when it can)."""
    if a.fn in ("count", "count_distinct"):
        return None if feature == "int64" else f"{a.fn} into {a.feature!r} gives int64, not {feature}"
    if a.fn == "mode":
        return None if feature == column else f"mode of a {column} column into {a.feature!r} gives {column}, not {feature}"
    if column not in _NUMERIC:
        return f"{a.fn} of a {column} column is not defined (feature {a.feature!r})"
    if a.fn == "mean":
        return None if feature in ("float32", "float64") else f"mean into {a.feature!r} gives a float, not {feature}"
    wanted = ("int64",) if column == "int64" else ("float32", "float64")
    if a.fn == "sum" and column == "int64" and feature in ("float32", "float64"):
        return None
    return None if feature in wanted else f"{a.fn} of a {column} column into {a.feature!r} gives {wanted[0]}, not {feature}"


def _import(location: str) -> tuple[list[ModuleType], Path | None]:
    """The modules of the repository (a package's submodules too) and its directory."""
    path = Path(location).expanduser()
    if path.suffix == ".py" and path.is_file():
        name = f"feature_repo_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return [module], path.resolve().parent
    if path.is_dir():
        path = path.resolve()
        parent, name = str(path.parent), path.name
        if not name.isidentifier():
            raise SpecError(f"feature repository {location}: its directory name {name!r} must be a Python identifier "
                            "(it is imported as a package)")
        if parent not in sys.path:
            sys.path.insert(0, parent)
        package = _import_module(name, location)
        found = Path(getattr(package, "__file__", None) or next(iter(package.__path__), "")).resolve()
        if path not in (found, found.parent):
            raise SpecError(f"feature repository {location}: a different module named {name!r} is already imported "
                            f"(from {found}); rename the repository's directory")
        return _walk(package, location), path
    if path.exists() or "/" in location or location.endswith(".py"):
        raise SpecError(f"feature repository {location} is neither a directory nor a .py file "
                        "(FEATURE_PLATFORM_REPO: a directory, a .py file or an importable module)")
    package = _import_module(location, location)
    directory = Path(package.__file__).resolve().parent if getattr(package, "__file__", None) else None
    return _walk(package, location), directory


def _import_module(name: str, location: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
            raise SpecError(f"feature repository {location} not found: FEATURE_PLATFORM_REPO must be a directory, "
                            "a .py file or an importable module") from None
        raise


def _walk(package: ModuleType, location: str) -> list[ModuleType]:
    modules = [package]
    if hasattr(package, "__path__"):
        for info in sorted(pkgutil.walk_packages(package.__path__, package.__name__ + "."), key=lambda i: i.name):
            last = info.name.rsplit(".", 1)[-1]
            if last.startswith(("test_", "_")) or last in ("definitions", "tests", "conftest") or ".tests." in info.name:
                continue  # Dagster's entry point, the repository's own tests and private helpers are not definitions
            modules.append(importlib.import_module(info.name))
    return modules
