"""The declarative feature-view spec: the single source of truth for every feature.

Plain frozen dataclasses, with no Dagster or Feast imports, so a spec can be read, hashed and
tested in milliseconds. Everything else (Feast objects, Pandera schema, Dagster asset) is derived.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Literal

DType = Literal["int64", "float32", "float64", "string", "bool"]
AggFn = Literal["count_distinct", "count", "sum", "mean", "min", "max", "mode"]

# Every declared name (views, entities, fields, sources, services, ...): snake_case and at most 63 characters,
# PostgreSQL's identifier limit. Names end up in SQL identifiers, Redis keys and Feast objects, so no spec can
# smuggle quoting, separators or whitespace into them; and a caller's name that does not match is unknown
# without a lookup.
_MAX_NAME = 63
NAME = re.compile(rf"[a-z][a-z0-9_]{{0,{_MAX_NAME - 1}}}")


def is_name(value) -> bool:
    """Whether `value` could be a declared name (use it with `NAME.fullmatch`, never `match`)."""
    return isinstance(value, str) and NAME.fullmatch(value) is not None
# The value a feature takes on a closing row (the entity's window just became empty).
_EMPTY_BY_FN: dict[str, Any] = {"count_distinct": 0, "count": 0, "sum": 0, "mean": None, "min": None, "max": None}


class SpecError(ValueError):
    """A feature-view spec is inconsistent; the message names the view and the field."""


@dataclass(frozen=True)
class Entity:
    """The key features are joined on (a Feast entity with one join key)."""

    name: str
    join_key: str
    dtype: DType = "int64"
    description: str = ""


@dataclass(frozen=True)
class Field:
    """One feature column: its dtype and the constraints Pandera enforces before any write."""

    name: str
    dtype: DType
    description: str = ""
    ge: float | None = None
    le: float | None = None
    isin: tuple[str, ...] | None = None
    nullable: bool = False
    # The field's previous name, when it was renamed (a breaking change: it needs a new view version).
    # `feature-platform plan` reports the rename and maps consumers' references to the new name.
    renamed_from: str | None = None


@dataclass(frozen=True)
class Agg:
    """`feature = fn(column)` over the rows of one entity in the window.

    `mode` picks the most frequent value, ties broken by the smallest value (alphabetical for
    strings). `empty` is the feature's value on a closing row; it defaults by `fn` (0 for
    counts and sums, null for mean/min/max) and must be given for `mode`.
    """

    feature: str
    fn: AggFn
    column: str
    empty: Any = "__default__"

    @property
    def empty_value(self) -> Any:
        if self.empty != "__default__":
            return self.empty
        return _EMPTY_BY_FN[self.fn]


@dataclass(frozen=True)
class WindowAggregation:
    """A sliding-window aggregation of a raw event source, evaluated as of a partition's end.

    For partition day D the window is `[D+1 - window, D+1)` and the feature timestamp is `D+1 00:00`
    UTC, the moment the value became knowable. An entity whose window just became empty gets a
    closing row built from each `Agg.empty_value`, so stale counts are never served.
    """

    source: str
    timestamp_column: str
    window: timedelta
    aggs: tuple[Agg, ...]


@dataclass(frozen=True)
class FeatureViewSpec:
    """Everything about one feature view, declared once."""

    name: str
    entity: Entity
    fields: tuple[Field, ...]
    ttl: timedelta
    owner: str
    freshness_sla: timedelta
    version: int
    description: str
    aggregation: WindowAggregation | None = None
    push_source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    freshness_warn: timedelta | None = None  # default: the SLA minus a tenth of it, at most 2 hours
    skew_threshold: float = 0.0  # online/offline mismatch rate above which the skew check fails
    # Versions side by side: the view's family (default: its own name). The family's first version keeps
    # the bare family name; every later version is a separate view named `<family>_v<version>` (see
    # `versioned_name`), with its own asset, offline table and online keys.
    family: str | None = None
    # Set (to a message such as "use user_activity_v3") once consumers should move away: reads warn,
    # the asset shows it, and `feature-platform remove` may delete the view once nothing refers to it.
    deprecated: str | None = None

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise SpecError(f"feature view {self.name!r}: " + "; ".join(problems))

    @property
    def family_name(self) -> str:
        return self.family or self.name

    def next_version_name(self, version: int) -> str:
        """The name version `version` of this view's family gets: `<family>_v<version>`."""
        return versioned_name(self.family_name, version)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def warn_window(self) -> timedelta:
        """Age at which the view turns from fresh to warn (it fails at `freshness_sla`)."""
        if self.freshness_warn is not None:
            return self.freshness_warn
        return self.freshness_sla - min(self.freshness_sla / 10, timedelta(hours=2))

    @property
    def all_tags(self) -> dict[str, str]:
        """User tags plus the ones every view carries (seed: team / freshness_sla / version)."""
        sla = "daily" if self.freshness_sla >= timedelta(hours=1) else "realtime"
        tags = {"team": self.owner, "freshness_sla": sla, **self.tags, "version": str(self.version)}
        if self.family_name != self.name:
            tags["family"] = self.family_name
        if self.deprecated:
            tags["deprecated"] = "true"
        return tags

    def fingerprint(self) -> str:
        """A short stable hash of everything that changes the view's data: its code_version.

        The versioning fields that do not change data (family, deprecation, rename hints) are left out,
        so deprecating a view does not make Dagster see new code, and older fingerprints stay valid.
        """
        data = asdict(self)
        for key in ("family", "deprecated"):
            data.pop(key)
        for f in data["fields"]:
            f.pop("renamed_from")
        payload = json.dumps(data, default=str, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def versioned_name(family: str, version: int) -> str:
    """The naming scheme of side-by-side versions: `<family>_v<version>` (the family's first version keeps
    the bare `<family>`, so existing assets, tables, online keys and `view:feature` references never change)."""
    return f"{family}_v{version}"


def _problems(spec: FeatureViewSpec):
    if not is_name(spec.name):
        yield "name must be snake_case"
    # Every name below ends up in SQL identifiers, Redis keys or Feast objects: snake_case only, so no spec
    # can smuggle quoting, separators or whitespace into them.
    named = [("entity", spec.entity.name), ("join key", spec.entity.join_key),
             *(("field", f.name) for f in spec.fields), *(("renamed_from", f.renamed_from) for f in spec.fields if f.renamed_from)]
    if spec.push_source is not None:
        named.append(("push_source", spec.push_source))
    if spec.aggregation is not None:
        named += [("source", spec.aggregation.source), ("timestamp column", spec.aggregation.timestamp_column),
                  *(("aggregated column", a.column) for a in spec.aggregation.aggs)]
    for what, value in named:
        if not is_name(value):
            yield f"{what} {value!r} must be a snake_case identifier of at most {_MAX_NAME} characters"
    if not spec.fields:
        yield "at least one field is required"
    names = [f.name for f in spec.fields]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        yield f"field {dup!r} is declared twice"
    if spec.entity.join_key in names:
        yield f"field {spec.entity.join_key!r} clashes with the entity's join key"
    if spec.version < 1:
        yield "version must be a positive integer"
    if spec.family is not None and spec.family != spec.name:
        if not is_name(spec.family):
            yield "family must be snake_case"
        elif spec.name != versioned_name(spec.family, spec.version):
            yield (f"a later version of family {spec.family!r} must be named "
                   f"{versioned_name(spec.family, spec.version)!r} (the family's first version keeps the bare name)")
    for f in spec.fields:
        if f.renamed_from is not None and (f.renamed_from == f.name or f.renamed_from in names):
            yield f"field {f.name!r}: renamed_from {f.renamed_from!r} must be a name the view no longer has"
    if spec.ttl <= timedelta(0):
        yield "ttl must be positive"
    if spec.freshness_sla <= timedelta(0):
        yield "freshness_sla must be positive"
    elif spec.freshness_warn is not None and not timedelta(0) < spec.freshness_warn < spec.freshness_sla:
        yield "freshness_warn must be positive and shorter than freshness_sla"
    if (spec.aggregation is None) == (spec.push_source is None):
        yield "exactly one of aggregation or push_source must be set"
    if spec.aggregation is not None:
        agg_features = [a.feature for a in spec.aggregation.aggs]
        if sorted(agg_features) != sorted(names):
            yield f"aggregations {sorted(agg_features)} must produce exactly the fields {sorted(names)}"
        for a in spec.aggregation.aggs:
            if a.fn == "mode" and a.empty == "__default__":
                yield f"aggregation of {a.feature!r}: mode needs an explicit empty value"


@dataclass(frozen=True)
class FeatureServiceSpec:
    """A named, versioned list of `view:feature` references: one name, the same columns offline and online."""

    name: str
    features: tuple[str, ...]
    version: int = 1
    description: str = ""
    owner: str = "platform"

    def __post_init__(self) -> None:
        if not is_name(self.name):
            raise SpecError(f"feature service {self.name!r}: name must be snake_case")
        bad = [f for f in self.features if f.count(":") != 1]
        if not self.features or bad:
            raise SpecError(f"feature service {self.name!r}: features must be 'view:feature' references, got {bad or 'none'}")


@dataclass(frozen=True)
class TrainingSetSpec:
    """A training set: labelled entity rows (from a label function) joined point-in-time with a feature service.

    `labels` names a function `module:attr` taking `(runtime, **label_params)` and returning entity
    keys, a tz-aware `event_timestamp` and the `label_column`. `refresh_cron` (a 5-field cron, UTC) opts in to
    automation: rebuilt after each tick once every feature view it reads has been updated since (default: built
    on demand only).
    """

    name: str
    feature_service: str
    labels: str
    label_column: str
    version: int = 1
    description: str = ""
    owner: str = "platform"
    label_params: dict[str, Any] = field(default_factory=dict)
    refresh_cron: str | None = None

    def __post_init__(self) -> None:
        if not is_name(self.name):
            raise SpecError(f"training set {self.name!r}: name must be snake_case")
        if ":" not in self.labels:
            raise SpecError(f"training set {self.name!r}: labels must be 'module:function', got {self.labels!r}")
        if self.refresh_cron is not None and (not isinstance(self.refresh_cron, str)
                                              or len(self.refresh_cron.split()) != 5):
            raise SpecError(f"training set {self.name!r}: refresh_cron must be a 5-field cron such as '0 3 * * *', "
                            f"got {self.refresh_cron!r}")

    def fingerprint(self) -> str:
        fields = asdict(self)
        if fields["refresh_cron"] is None:  # an unset option leaves the fingerprints of existing sets as they were
            del fields["refresh_cron"]
        payload = json.dumps(fields, default=str, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RequestFeatureViewSpec:
    """Features computed at request time (Feast's on-demand feature view), declared once.

    `function` takes a DataFrame whose columns are the input features (by feature name, with the
    serving dtypes) and the `request_fields` (values sent with the request, or columns of a training
    set's entity frame) and returns a DataFrame with the `features`. The same function computes them
    for `training_set` and for online reads, so the two cannot drift apart. Reference them as
    `name:feature`, like stored features.
    """

    name: str
    inputs: tuple[str, ...]  # 'view:feature' references of stored features
    features: tuple[Field, ...]
    function: Any  # Callable[[pd.DataFrame], pd.DataFrame]
    request_fields: tuple[Field, ...] = ()
    version: int = 1
    description: str = ""
    owner: str = "platform"

    def __post_init__(self) -> None:
        problems = list(_request_view_problems(self))
        if problems:
            raise SpecError(f"request feature view {self.name!r}: " + "; ".join(problems))

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def field(self, name: str) -> Field:
        return next(f for f in self.features if f.name == name)


def _request_view_problems(spec: RequestFeatureViewSpec):
    if not is_name(spec.name):
        yield f"name must be snake_case (^[a-z][a-z0-9_]*$, at most {_MAX_NAME} characters)"
    if not callable(spec.function):
        yield "function must be callable"
    bad = [ref for ref in spec.inputs if ref.count(":") != 1]
    if not spec.inputs or bad:
        yield f"inputs must be 'view:feature' references, got {bad or 'none'}"
    names = [ref.partition(":")[2] for ref in spec.inputs] + [f.name for f in spec.request_fields]
    if len(set(names)) != len(names):
        yield f"input feature and request field names must be distinct, got {names}"
    outputs = [f.name for f in spec.features]
    if not outputs or len(set(outputs)) != len(outputs):
        yield f"features must be a non-empty list of distinct fields, got {outputs}"
    for f in (*spec.features, *spec.request_fields):
        if not is_name(f.name):
            yield f"field {f.name!r}: name must be snake_case"


Action = Literal["read", "push"]


@dataclass(frozen=True)
class AccessSpec:
    """Who may do what through the HTTP feature server: callers holding any of `roles` may perform
    `actions` (read online features, push events) on the listed feature views and feature services.
    Nothing is granted otherwise. Derived into Feast `Permission`s (role-based policies)."""

    name: str
    roles: tuple[str, ...]
    actions: tuple[Action, ...]
    feature_views: tuple[str, ...] = ()
    feature_services: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not is_name(self.name):
            problems.append("name must be snake_case")
        if not self.roles or not all(isinstance(r, str) and r for r in self.roles):
            problems.append("roles must be a non-empty list of role names")
        if not self.actions or not set(self.actions) <= {"read", "push"}:
            problems.append(f"actions must be 'read' and/or 'push', got {list(self.actions)}")
        if not self.feature_views and not self.feature_services:
            problems.append("grant at least one feature view or feature service")
        if "push" in self.actions and self.feature_services:
            problems.append("feature services are read-only: push is granted on feature views")
        if problems:
            raise SpecError(f"access {self.name!r}: " + "; ".join(problems))
