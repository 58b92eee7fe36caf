"""What the Feast registry holds, as descriptions `plan` can compare with the specs in code.

Each feature view the platform applies carries its full description (`derive.description.describe`: fields with
dtype, constraints and aggregation, TTL, entity, source, window, version, family, fingerprint,
deprecation) as JSON in the Feast tag `feature_platform.description`. Reading it back, what Feast
itself records (schema and dtypes, TTL, entity join keys, tags) wins over the tag, so a view changed
behind the platform's back is compared as it really is.
"""

from __future__ import annotations

import json
from typing import Any

from feast import FeatureStore, FeatureView

from feature_platform.derive.description import DESCRIPTION_TAG
from feature_platform.dtypes import BY_FEAST_NAME


def feature_view_description(fv: FeatureView) -> dict[str, Any]:
    recorded = json.loads(fv.tags[DESCRIPTION_TAG]) if DESCRIPTION_TAG in fv.tags else {}
    by_name = {f["name"]: f for f in recorded.get("fields", [])}
    fields = []
    for f in fv.features:
        entry = dict(by_name.get(f.name, {"name": f.name, "description": f.description}))
        entry["dtype"] = BY_FEAST_NAME.get(str(f.dtype), str(f.dtype))
        fields.append(entry)
    out = {**recorded, "name": fv.name, "fields": fields, "ttl_seconds": int(fv.ttl.total_seconds()) if fv.ttl else 0,
           "family": recorded.get("family", fv.tags.get("family", fv.name)),
           "version": int(fv.tags.get("version", recorded.get("version", 0)))}
    if "entity" in recorded and fv.entity_columns:
        out["entity"] = {**recorded["entity"], "join_key": fv.entity_columns[0].name}
    out["location"] = source_location(fv)
    out["tags"] = recorded.get("tags", {})
    return out


def source_location(fv: FeatureView) -> str:
    """Where the view's offline rows live (a Parquet directory or a PostgreSQL table)."""
    source = fv.batch_source
    if source is None:
        return ""
    path = getattr(source, "path", None)
    return str(path) if path else source.get_table_query_string()


def registered_views(store: FeatureStore) -> dict[str, dict[str, Any]]:
    """Every feature view in the registry (read past the cache), described."""
    return {fv.name: feature_view_description(fv) for fv in store.list_feature_views(allow_cache=False)}


def registered_services(store: FeatureStore) -> dict[str, list[str]]:
    """Every feature service in the registry, as its `view:feature` references."""
    return {
        fs.name: [f"{p.name}:{f.name}" for p in fs.feature_view_projections for f in p.features]
        for fs in store.registry.list_feature_services(store.project, allow_cache=False)
    }


def registered_request_views(store: FeatureStore) -> dict[str, dict[str, Any]]:
    """The on-demand feature views the platform registered (for its request views), described; read past the
    cache. Others (applied with Feast by hand) are left out: the platform does not manage them."""
    found = {}
    for odfv in store.registry.list_on_demand_feature_views(store.project, allow_cache=False):
        if DESCRIPTION_TAG in odfv.tags:
            found[odfv.name] = json.loads(odfv.tags[DESCRIPTION_TAG])
    return found
