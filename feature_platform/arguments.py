"""The checks of what callers pass to `FeaturePlatform`, made before any work: names that could have been declared
(and the specs they name), days, callables, paths, entity rows. Each raises the platform's error for the argument."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from feature_platform.config import Settings
from feature_platform.errors import InvalidArgumentError, InvalidDateError, UnknownFeatureError, UnknownFeatureViewError
from feature_platform.errors import shorten as _short
from feature_platform.repo import Repository
from feature_platform.spec import NAME as _NAME  # every declared name matches it: others are unknown without a lookup
from feature_platform.spec import FeatureViewSpec

PATH_LIMIT = 300  # characters of a path a message quotes: real ones whole, a hostile one cut


def view_spec(repo: Repository, name) -> FeatureViewSpec:
    """The spec of feature view `name` declared in `repo`."""
    if not isinstance(name, str):
        raise TypeError(f"a feature view name must be a string, not {type(name).__name__}")
    if not _NAME.fullmatch(name):
        raise UnknownFeatureViewError(f"unknown feature view {_short(name)}: view names are snake_case "
                                      f"identifiers (known views: {', '.join(sorted(repo.views))})")
    return repo.view(name)


def daily_view_spec(repo: Repository, name, instead: str) -> FeatureViewSpec:
    """The spec of declared feature view `name`, which must have daily partitions; `instead` ends the error of a
    view fed by a push source."""
    spec = view_spec(repo, name)
    if spec.aggregation is None:
        raise InvalidDateError(f"feature view {name!r} is fed by push source {spec.push_source!r}, {instead}")
    return spec


def push_view_spec(repo: Repository, source) -> FeatureViewSpec:
    """The spec of the feature view push source `source` feeds."""
    views = [s for s in repo.views.values() if s.push_source == source]
    if not views:
        known = sorted(s.push_source for s in repo.views.values() if s.push_source)
        raise UnknownFeatureViewError(f"unknown push source {_short(source)}; known: {', '.join(known) or 'none'}")
    return views[0]


def check_batch(batch) -> None:
    if isinstance(batch, pd.DataFrame):
        return
    if not isinstance(batch, list):
        raise TypeError(f"push expects a pandas DataFrame or a list of dicts, not {type(batch).__name__}")
    for row in batch:
        if not isinstance(row, dict):
            raise TypeError(f"push expects a pandas DataFrame or a list of dicts, not a list holding "
                            f"{type(row).__name__}")


def check_registered_view(view) -> None:
    """A view name the registry could hold (it may no longer be declared)."""
    if not isinstance(view, str):
        raise TypeError(f"a feature view name must be a string, not {type(view).__name__}")
    if not _NAME.fullmatch(view):
        raise UnknownFeatureViewError(f"feature view {_short(view)} is not in the registry (view names are "
                                      "snake_case identifiers)")


def version_number(family, version) -> int:
    """`version` as an int, for a name that could be a view family's."""
    if not (isinstance(family, str) and _NAME.fullmatch(family)):
        raise UnknownFeatureViewError(f"{_short(family)} is not a view family name (snake_case identifiers)")
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)):
        raise InvalidArgumentError(f"version must be an integer, not {_short(version)}")
    return int(version)


def check_history_filter(view) -> None:
    """None, or a view, family or feature service name."""
    if view is not None and not (isinstance(view, str) and _NAME.fullmatch(view)):
        raise UnknownFeatureViewError(f"{_short(view)} is not a view, family or feature service name "
                                      "(snake_case identifiers)")


def check_training_set(repo: Repository, name) -> None:
    known = repo.training_sets
    if not (isinstance(name, str) and name in known):
        raise UnknownFeatureViewError(f"unknown training set {_short(name)}; known: {', '.join(known) or 'none'}")


def parse_day(value, name: str) -> date:
    if value is pd.NaT:
        raise InvalidDateError(f"{name} date is NaT; pass an ISO day like 2026-01-31")
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):  # str(20260131) would parse as a day
        raise InvalidDateError(f"{name} date must be an ISO day string like 2026-01-31 or a date, "
                               f"not {type(value).__name__}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidDateError(f"{name} date {_short(value)} is not an ISO day like 2026-01-31") from None


def day_range(settings: Settings, start, end, clamp: bool = True) -> tuple[date, date]:
    """Days `start..end` (`end` defaults to `start`); with `clamp`, complete partitions of `settings`."""
    first = parse_day(start, "start")
    last = parse_day(end, "end") if end is not None else first
    if first > last:
        raise InvalidDateError(f"start {first} is after end {last}")
    if clamp and first < settings.partitions_start:
        raise InvalidDateError(
            f"start {first} is before the first partition {settings.partitions_start} "
            "(FEATURE_PLATFORM_PARTITIONS_START)"
        )
    if clamp and last >= date.today():
        raise InvalidDateError(f"end {last} is not a complete UTC day yet (the last partition is yesterday)")
    return first, last


def optional_day_range(start, end) -> tuple[date | None, date | None]:
    """Days `start..end`, either open (None)."""
    first = parse_day(start, "start") if start is not None else None
    last = parse_day(end, "end") if end is not None else None
    if first and last and first > last:
        raise InvalidDateError(f"start {first} is after end {last}")
    return first, last


def check_choice(name: str, value, allowed: tuple[str, ...]) -> None:
    """`value` is one of `allowed`: the error lists them ('pandas', 'arrow' or 'spark')."""
    if value not in allowed:
        listed = " or ".join(filter(None, [", ".join(map(repr, allowed[:-1])), repr(allowed[-1])]))
        raise InvalidArgumentError(f"{name} must be {listed}, not {_short(value)}")


def check_online_read(features, entity_rows, *, now, output: str) -> None:
    """The arguments of `FeaturePlatform.online_features` but `with_metadata` and `full_feature_names`."""
    check_choice("output", output, ("pandas", "dict"))
    check_now(now)
    check_features(features)
    check_entity_rows(entity_rows)


def check_training_output(output: str, engine: str, path) -> None:
    """What `FeaturePlatform.training_set` returns or writes, and its engine."""
    check_choice("output", output, ("pandas", "arrow", "spark"))
    check_choice("engine", engine, ("duckdb", "spark", "feast"))
    check_output_path(path)


def check_user(user) -> None:
    if user is not None and not isinstance(user, str):
        raise TypeError(f"user must be a string, not {type(user).__name__}")


def check_now(now) -> None:
    if now is not None and not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime, not {type(now).__name__}")


def check_progress(progress) -> None:
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable (done, total, asset, partition), not {type(progress).__name__}")


def check_output_path(path) -> None:
    """A local `path` to write a training set to must be in an existing directory: checked before any work
    (a URL such as s3://... is left to its writer)."""
    if path is None:
        return
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str) or "://" in text:
        return
    try:
        parent_exists = bool(text) and Path(text).expanduser().absolute().parent.is_dir()
    except (OSError, ValueError):  # a name too long, a NUL byte
        parent_exists = False
    if not parent_exists:
        raise InvalidArgumentError(f"path {_short(text, PATH_LIMIT)}: its directory does not exist (or the path is not "
                                   "valid); create the directory first")


def os_reason(exc: OSError) -> str:
    """What went wrong, without the path (the message names it once, cut): 'Is a directory'."""
    return os.strerror(exc.errno) if exc.errno else _short(str(exc), 200, quote=False)


def check_features(features) -> None:
    """A feature service name or a list of 'view:feature' strings whose names could have been declared."""
    if isinstance(features, str):
        if not _NAME.fullmatch(features):
            raise UnknownFeatureError(f"{_short(features)} is not a feature service; pass a list of "
                                      "'view:feature' references or a service name")
        return
    if not isinstance(features, (list, tuple)):
        raise TypeError(f"features must be a list of 'view:feature' strings or a feature service name, "
                        f"not {type(features).__name__}")
    try:
        _check_references(tuple(features))  # cached: serving checks the same list per request
    except TypeError:  # an unhashable item
        _check_references.__wrapped__(features)


@lru_cache(maxsize=1024)
def _check_references(features) -> None:  # raises: errors are never cached
    for ref in features:
        if not isinstance(ref, str):
            raise UnknownFeatureError(f"feature reference {_short(ref)} must be a 'view:feature' string")
        view, sep, feature = ref.partition(":")
        if sep and not _NAME.fullmatch(view):
            raise UnknownFeatureViewError(f"unknown feature view {_short(view)} in {_short(ref)}: view names "
                                          "are snake_case identifiers")
        if sep and not _NAME.fullmatch(feature):
            raise UnknownFeatureError(f"feature view {view!r} has no feature {_short(feature)}: feature names "
                                      "are snake_case identifiers")


def check_entity_rows(entity_rows) -> None:
    # A list of dicts, the common case, passes without the (slower) abstract-class checks.
    if type(entity_rows) is not list and (isinstance(entity_rows, (str, bytes, Mapping, pd.DataFrame))
                                          or not isinstance(entity_rows, Sequence)):
        raise TypeError(f"entity_rows must be a list of dicts, not {type(entity_rows).__name__}")
    for i, row in enumerate(entity_rows):
        if type(row) is not dict and not isinstance(row, Mapping):
            raise TypeError(f"entity row {i} must be a dict, not {type(row).__name__}")
