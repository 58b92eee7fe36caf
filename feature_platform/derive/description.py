"""A spec's description: everything `plan` compares, as JSON-able data, stored with the Feast objects as a tag.

Derived from the spec like the Feast objects that carry it (`derive.feast_objects`); `versioning` reads it back
from the registry and compares (`versioning.changes.diff`).
"""

from __future__ import annotations

import json
from typing import Any

from feature_platform.spec import FeatureViewSpec, RequestFeatureViewSpec

DESCRIPTION_TAG = "feature_platform.description"


def description_tag(description: dict[str, Any]) -> dict[str, str]:
    return {DESCRIPTION_TAG: json.dumps(description, sort_keys=True, separators=(",", ":"))}


def describe(spec: FeatureViewSpec) -> dict[str, Any]:
    """Everything about a view that `plan` compares, as JSON-able data (stored in the registry's tags)."""
    aggs = {a.feature: a for a in spec.aggregation.aggs} if spec.aggregation else {}
    fields = []
    for f in spec.fields:
        a = aggs.get(f.name)
        fields.append({
            "name": f.name, "dtype": f.dtype, "description": f.description, "ge": f.ge, "le": f.le,
            "isin": sorted(f.isin) if f.isin is not None else None, "nullable": f.nullable,
            "aggregation": f"{a.fn}({a.column})" if a else None,
            "empty": _jsonable(a.empty_value) if a else None,
            "renamed_from": f.renamed_from,
        })
    agg = spec.aggregation
    return {
        "name": spec.name,
        "family": spec.family_name,
        "version": spec.version,
        "fingerprint": spec.fingerprint(),
        "entity": {"name": spec.entity.name, "join_key": spec.entity.join_key, "dtype": spec.entity.dtype},
        "ttl_seconds": int(spec.ttl.total_seconds()),
        "source": f"push:{spec.push_source}" if spec.push_source else f"batch:{agg.source}",
        "timestamp_column": agg.timestamp_column if agg else None,
        "window_seconds": int(agg.window.total_seconds()) if agg else None,
        "fields": fields,
        "description": spec.description,
        "owner": spec.owner,
        "freshness_sla_seconds": int(spec.freshness_sla.total_seconds()),
        "tags": dict(sorted(spec.tags.items())),
        "deprecated": spec.deprecated,
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def request_view_description(spec: RequestFeatureViewSpec) -> dict[str, Any]:
    """What an on-demand feature view registered for a request view stands for (its function by name: the
    registered transformation calls it, so the function's code may change without a new registration)."""
    return {"name": spec.name, "version": spec.version, "inputs": list(spec.inputs),
            "request_fields": [[f.name, f.dtype] for f in spec.request_fields],
            "features": [[f.name, f.dtype] for f in spec.features],
            "function": f"{spec.function.__module__}.{spec.function.__qualname__}"}
