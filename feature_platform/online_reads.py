"""`FeaturePlatform.online_features` past its argument checks: feature lists resolved once per platform (serving
resolves the same list per request), entity keys checked before any store sees them, then the online store's read
(or, with request-time features, `request_time.online` around it)."""

from __future__ import annotations

from feature_platform import request_time
from feature_platform.dtypes import is_key_value as _valid_key
from feature_platform.errors import InvalidEntityError, UnknownFeatureError
from feature_platform.errors import shorten as _short
from feature_platform.features import resolve_features
from feature_platform.runtime import Runtime
from feature_platform.specs import get_spec
from feature_platform.versioning.deprecation import warn_deprecated


class OnlineReads:
    """The online reads of one platform, with its caches of resolved feature lists."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._request_feature_lists: dict = {}
        self._resolved_features: dict = {}

    def read(self, features, entity_rows, *, with_metadata: bool, full_feature_names: bool, now, output: str):
        """Online feature vectors of checked arguments (`FeaturePlatform.online_features`)."""
        plan = request_time.plan(features, full_feature_names) if self._has_request_features(features) else None
        if plan is not None:
            return request_time.online(self, plan, entity_rows, with_metadata=with_metadata, now=now, output=output)
        columns, specs = self._resolved(features, full_feature_names)
        warn_deprecated(specs.values())
        rows = [dict(r) for r in entity_rows]
        for spec in specs.values():
            key = spec.entity.join_key
            for i, row in enumerate(rows):
                if key not in row:
                    raise UnknownFeatureError(
                        f"entity row {i} lacks join key {key!r} of view {spec.name!r}: {_short(row)}")
                if not _valid_key(spec.entity.dtype, row[key]):
                    # Before any store sees it: a float or bool would be truncated into another entity's
                    # key, a value outside int64 would wrap around.
                    raise InvalidEntityError(
                        f"entity row {i}: join key {key!r} of view {spec.name!r} must be "
                        f"{'an integer in the int64 range' if spec.entity.dtype == 'int64' else 'a string'}, "
                        f"not {_short(row[key])} ({type(row[key]).__name__})")
        if output == "dict":
            return self.runtime.online.read_lists(specs, columns, rows, now=now, with_metadata=with_metadata)
        frame = self.runtime.online.read(specs, columns, rows, now=now)
        if not with_metadata:
            frame = frame.drop(columns=[c for c in frame.columns if c.endswith(("__status", "__event_timestamp"))])
        return frame

    def _has_request_features(self, features) -> bool:
        """Whether `features` names any request-time feature (cached: serving asks per request)."""
        key = features if isinstance(features, str) else tuple(features)
        cache = self._request_feature_lists
        try:
            return cache[key]
        except KeyError:
            cache[key] = bool(request_time.plan(features, True).request_views)
            return cache[key]
        except TypeError:  # unhashable items: plan() rejects them with a clear error
            return bool(request_time.plan(features, True).request_views)

    def _resolved(self, features, full_feature_names: bool):
        """Resolved columns and specs of a feature list, cached: serving resolves the same list per request."""
        key = (features if isinstance(features, str) else tuple(features), full_feature_names)
        cache = self._resolved_features
        if key not in cache:
            columns = resolve_features(features, full_feature_names)
            cache[key] = (columns, {c.view: get_spec(c.view) for c in columns})
        return cache[key]
