"""Request-time features: one function, applied to training sets and to online reads alike.

A feature list may mix stored features (`view:feature`) and request-time ones (`request_view:feature`).
`FeaturePlan` splits it: the stored features the engines fetch (the requested ones plus the request
views' inputs), and the order and names of the output columns. `compute` is the only place a request
view's function is called; both paths hand it the same columns with the same (serving) dtypes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from feature_platform.dtypes import serving_dtype
from feature_platform.errors import RequestFeatureError, UnknownFeatureError, shorten
from feature_platform.features import check_unique_columns, references
from feature_platform.spec import RequestFeatureViewSpec
from feature_platform.specs import all_request_views
from feature_platform.vocabulary import MISSING, PRESENT, event_timestamp_column, full_feature_name, status_column


@dataclass(frozen=True)
class Output:
    view: str
    feature: str
    column: str
    request: bool  # computed at request time (else stored)


@dataclass(frozen=True)
class FeaturePlan:
    outputs: tuple[Output, ...]
    stored: tuple[str, ...]  # stored 'view:feature' references to fetch (full names: view__feature)
    request_views: tuple[RequestFeatureViewSpec, ...]

    @property
    def request_fields(self) -> list:
        return list({f.name: f for v in self.request_views for f in v.request_fields}.values())


def column_clashes(outputs: Sequence, existing, where: str) -> str | None:
    """Why the output columns of `outputs` (each with `view`, `feature`, `column`) cannot be added beside the
    caller's columns `existing`, or None. A training set returns the caller's columns untouched, so a
    feature whose output name is already taken is refused rather than written over the caller's column."""
    taken = set(existing)
    clashes = [o for o in outputs if o.column in taken]
    if not clashes:
        return None
    named = ", ".join(f"{o.column!r} (feature '{o.view}:{o.feature}')" for o in clashes[:5])
    more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
    full = all(o.column == full_feature_name(o.view, o.feature) for o in clashes)
    return (f"{where} already has column(s) {named}{more}, the name(s) the feature(s) would get; a training set "
            "never overwrites its caller's columns: rename yours" + ("" if full else
                                                                     " or pass full_feature_names=True (columns named "
                                                                     "'<view>__<feature>')"))


def plan(features: str | Sequence[str], full_feature_names: bool = False) -> FeaturePlan:
    refs = references(features)
    views = all_request_views()
    outputs, stored, used = [], [], {}
    for ref in refs:
        if not isinstance(ref, str):
            raise UnknownFeatureError(f"feature reference {shorten(ref)} must be a 'view:feature' string")
        view, _, feature = ref.partition(":")
        request = view in views
        if request:
            spec = views[view]
            if feature not in spec.feature_names:
                raise UnknownFeatureError(f"request feature view {view!r} has no feature {shorten(feature)}; "
                                          f"it has {', '.join(spec.feature_names)}")
            used[view] = spec
            stored.extend(spec.inputs)
        else:
            stored.append(ref)
        outputs.append(Output(view, feature, full_feature_name(view, feature) if full_feature_names else feature, request))
    check_unique_columns([o.column for o in outputs])
    return FeaturePlan(tuple(outputs), tuple(dict.fromkeys(stored)), tuple(used.values()))


def compute(spec: RequestFeatureViewSpec, stored: pd.DataFrame, request: pd.DataFrame) -> pd.DataFrame:
    """`spec`'s features for each row. `stored` has the inputs as `view__feature` columns, `request`
    the request fields; both come with the serving dtypes, so training and serving see equal frames."""
    frame = pd.DataFrame(index=stored.index)
    for ref in spec.inputs:
        frame[ref.partition(":")[2]] = stored[ref.replace(":", "__")]
    for f in spec.request_fields:
        frame[f.name] = request[f.name]
    try:
        out = spec.function(frame.copy())
    except Exception as exc:  # noqa: BLE001 - a user function's failure, reported with the view's name
        raise RequestFeatureError(f"request feature view {spec.name!r}: its function raised "
                                  f"{type(exc).__name__}: {shorten(exc, 300, quote=False)}") from exc
    if not isinstance(out, pd.DataFrame) or len(out) != len(frame):
        raise RequestFeatureError(f"request feature view {spec.name!r}: its function must return a DataFrame of "
                                  f"{len(frame)} rows, got {type(out).__name__} of {len(out) if hasattr(out, '__len__') else '?'}")
    missing = [f.name for f in spec.features if f.name not in out.columns]
    if missing:
        raise RequestFeatureError(f"request feature view {spec.name!r}: its function did not return {missing}")
    result = pd.DataFrame(index=stored.index)
    for f in spec.features:
        try:
            result[f.name] = pd.Series(out[f.name].to_numpy(), index=stored.index).astype(serving_dtype(f.dtype))
        except (TypeError, ValueError) as exc:
            raise RequestFeatureError(f"request feature view {spec.name!r}: feature {f.name!r} is not "
                                      f"{f.dtype}: {shorten(exc, 300, quote=False)}") from None
    return result


def feast_transformation(view: str, features_df: pd.DataFrame) -> pd.DataFrame:
    """Request view `view` as Feast's on-demand feature view of that name computes it (`apply` registers one per
    request view): the inputs and request fields Feast hands over (by feature name, Feast's dtypes) cast to the
    serving dtypes, then `compute`, so stock Feast gets the platform's values from the same function."""
    from feature_platform.specs import get_spec

    spec = all_request_views()[view]
    stored = pd.DataFrame(index=features_df.index)
    for ref in spec.inputs:
        source, _, feature = ref.partition(":")
        full = full_feature_name(source, feature)
        column = features_df[full] if full in features_df.columns else features_df[feature]
        stored[full] = column.astype(serving_dtype(get_spec(source).field(feature).dtype))
    request = pd.DataFrame({f.name: features_df[f.name].astype(serving_dtype(f.dtype)) for f in spec.request_fields},
                           index=features_df.index)
    return compute(spec, stored, request)


def request_frame(plan_: FeaturePlan, source: pd.DataFrame, where: str) -> pd.DataFrame:
    """The request fields out of `source` (entity rows or an entity frame), cast to their serving dtypes."""
    out = pd.DataFrame(index=source.index)
    for f in plan_.request_fields:
        if f.name not in source.columns:
            views = [v.name for v in plan_.request_views if f in v.request_fields]
            raise RequestFeatureError(f"{where} lacks request field {f.name!r} of request feature view(s) {views}")
        try:
            out[f.name] = source[f.name].astype(serving_dtype(f.dtype))
        except (TypeError, ValueError, OverflowError) as exc:  # e.g. 2**63 for an int64 field
            raise RequestFeatureError(f"{where}: request field {f.name!r} is not {f.dtype}: "
                                      f"{shorten(exc, 300, quote=False)}") from None
    return out


def assemble(plan_: FeaturePlan, stored: pd.DataFrame, request: pd.DataFrame) -> dict[str, pd.Series]:
    """The output columns in the plan's order, from the fetched stored columns and the request fields."""
    computed = {v.name: compute(v, stored, request) for v in plan_.request_views}
    return {o.column: computed[o.view][o.feature] if o.request else stored[full_feature_name(o.view, o.feature)]
            for o in plan_.outputs}


def online(reads, plan_: FeaturePlan, entity_rows: list[dict], *, with_metadata: bool, now, output: str):
    """`FeaturePlatform.online_features` for a plan with request-time features: the stored inputs are
    read as usual by `reads` (the platform's `OnlineReads`, in serving dtypes), then `compute` runs on them as
    it does for training sets. A request-time value is `present` when the function gave one, else `missing`."""
    rows = [dict(r) for r in entity_rows]
    request = request_frame(plan_, pd.DataFrame(rows, index=pd.RangeIndex(len(rows))), "entity rows")  # before any read
    stored = reads.read(list(plan_.stored), rows, with_metadata=True, full_feature_names=True, now=now,
                        output="pandas")
    values = assemble(plan_, stored, request)
    keys = list(dict.fromkeys(k for r in rows for k in r)) if rows else []
    frame = pd.DataFrame({k: stored[k] if k in stored.columns else [r.get(k) for r in rows] for k in keys},
                         index=stored.index)
    for o in plan_.outputs:
        frame[o.column] = values[o.column]
        if with_metadata:
            if o.request:
                frame[status_column(o.column)] = values[o.column].notna().map({True: PRESENT, False: MISSING})
                frame[event_timestamp_column(o.column)] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
            else:
                full = full_feature_name(o.view, o.feature)
                frame[status_column(o.column)] = stored[status_column(full)]
                frame[event_timestamp_column(o.column)] = stored[event_timestamp_column(full)]
    if output == "pandas":
        return frame
    return {c: [None if pd.isna(v) else (int(v.value) if isinstance(v, pd.Timestamp) else v)
                for v in frame[c].tolist()] for c in frame.columns}
