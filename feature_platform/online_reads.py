"""`FeaturePlatform.online_features` past its argument checks: feature lists resolved once per platform (serving
resolves the same list per request), entity keys checked before any store sees them, then the online store's read
(or, with request-time features, `request_time.online` around it)."""

from __future__ import annotations

from typing import NamedTuple

from feature_platform import request_time
from feature_platform.dtypes import INT64_MAX as _INT64_MAX
from feature_platform.dtypes import INT64_MIN as _INT64_MIN
from feature_platform.dtypes import is_key_value as _valid_key
from feature_platform.errors import InvalidEntityError, UnknownFeatureError
from feature_platform.errors import shorten as _short
from feature_platform.features import resolve_features
from feature_platform.runtime import Runtime
from feature_platform.stores.online import ReadLayout, read_layout
from feature_platform.versioning.deprecation import warn_deprecated

_MAX_PLANS = 4096


class _Plan(NamedTuple):
    """What a read of one feature list needs, resolved once (per repository: a reloaded one resolves again)."""

    request: bool  # names request-time features: `request_time.online` reads it
    columns: list | None
    specs: dict | None
    deprecated: list  # the specs to warn about on every read
    keys: list  # (join key, dtype, view) of each view: the entity rows' checks
    layout: ReadLayout | None  # the online store's read of these columns


class OnlineReads:
    """The online reads of one platform, with its caches of resolved feature lists."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._request_feature_lists: dict = {}
        self._resolved_features: dict = {}
        self._plans: dict = {}
        self._repo = None  # the repository the caches hold (loaded on the first read)

    def read(self, features, entity_rows, *, with_metadata: bool, full_feature_names: bool, now, output: str):
        """Online feature vectors of checked arguments (`FeaturePlatform.online_features`)."""
        plan = self._plan(features, full_feature_names)
        if plan.request:
            rt = request_time.plan(self.runtime.repo, features, full_feature_names)
            return request_time.online(self, rt, entity_rows, with_metadata=with_metadata, now=now, output=output)
        columns, specs = plan.columns, plan.specs
        if plan.deprecated:
            warn_deprecated(plan.deprecated)
        rows = [dict(r) for r in entity_rows]
        for key, dtype, view in plan.keys:
            for i, row in enumerate(rows):
                try:
                    value = row[key]
                except KeyError:
                    raise UnknownFeatureError(
                        f"entity row {i} lacks join key {key!r} of view {view!r}: {_short(row)}") from None
                # The common keys pass without a call; anything else is judged by `is_key_value`.
                if (type(value) is int and _INT64_MIN <= value <= _INT64_MAX if dtype == "int64"
                        else type(value) is str) or _valid_key(dtype, value):
                    continue
                # Before any store sees it: a float or bool would be truncated into another entity's
                # key, a value outside int64 would wrap around.
                raise InvalidEntityError(
                    f"entity row {i}: join key {key!r} of view {view!r} must be "
                    f"{'an integer in the int64 range' if dtype == 'int64' else 'a string'}, "
                    f"not {_short(value)} ({type(value).__name__})")
        if output == "dict":
            return self.runtime.online.read_lists(specs, columns, rows, now=now, with_metadata=with_metadata,
                                                  layout=plan.layout)
        frame = self.runtime.online.read(specs, columns, rows, now=now)
        if not with_metadata:
            frame = frame.drop(columns=[c for c in frame.columns if c.endswith(("__status", "__event_timestamp"))])
        return frame

    def _plan(self, features, full_feature_names: bool) -> _Plan:
        """The read plan of a feature list, cached: serving reads the same lists per request."""
        if self.runtime.repo is not self._repo:  # another repository (reloaded): its views may differ
            for cache in (self._plans, self._resolved_features, self._request_feature_lists):
                cache.clear()
            self._repo = self.runtime.repo
        try:
            key = (features if isinstance(features, str) else tuple(features), full_feature_names)
            plan = self._plans.get(key)
        except TypeError:  # unhashable items: resolving rejects them with a clear error
            key = plan = None
        if plan is not None:
            return plan
        if self._has_request_features(features):
            plan = _Plan(True, None, None, [], [], None)
        else:
            columns, specs = self._resolved(features, full_feature_names)
            plan = _Plan(False, columns, specs, [s for s in specs.values() if s.deprecated],
                         [(s.entity.join_key, s.entity.dtype, s.name) for s in specs.values()], read_layout(specs, columns))
        if key is not None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()  # callers building feature lists per request: bounded, not leaking
            self._plans[key] = plan
        return plan

    def _has_request_features(self, features) -> bool:
        """Whether `features` names any request-time feature (cached: serving asks per request)."""
        key = features if isinstance(features, str) else tuple(features)
        cache = self._request_feature_lists
        try:
            return cache[key]
        except KeyError:
            cache[key] = bool(request_time.plan(self.runtime.repo, features, True).request_views)
            return cache[key]
        except TypeError:  # unhashable items: plan() rejects them with a clear error
            return bool(request_time.plan(self.runtime.repo, features, True).request_views)

    def _resolved(self, features, full_feature_names: bool):
        """Resolved columns and specs of a feature list, cached: serving resolves the same list per request."""
        key = (features if isinstance(features, str) else tuple(features), full_feature_names)
        cache = self._resolved_features
        if key not in cache:
            columns = resolve_features(self.runtime.repo, features, full_feature_names)
            cache[key] = (columns, {c.view: self.runtime.repo.view(c.view) for c in columns})
        return cache[key]
