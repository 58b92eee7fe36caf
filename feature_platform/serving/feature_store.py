"""A Feast `FeatureStore` whose online reads and pushes go through the platform.

Feast's feature server calls `store.get_online_features` and `store.push`. Routed through the
platform, HTTP clients get exactly the semantics of `FeaturePlatform.online_features` and `push`:
a value older than its view's TTL comes back null with Feast's own `OUTSIDE_MAX_AGE` status (Feast's
Redis and SQLite reads ignore the TTL), and a push is validated, written newest-wins online and logged
offline (Feast's push overwrites online values unconditionally and skips validation).
"""

from __future__ import annotations

import asyncio

from feast import FeatureService, FeatureStore
from feast.data_source import PushMode
from feast.online_response import OnlineResponse
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus, GetOnlineFeaturesResponse
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from feature_platform import dtypes, request_time
from feature_platform.errors import InvalidEntityError
from feature_platform.feast_format.serving import json_values, status_names, timestamp_texts
from feature_platform.vocabulary import EXPIRED, MISSING, PRESENT, event_timestamp_column, status_column

STATUS = {PRESENT: FieldStatus.PRESENT, MISSING: FieldStatus.NOT_FOUND, EXPIRED: FieldStatus.OUTSIDE_MAX_AGE}


class PlatformFeatureStore(FeatureStore):
    """Feast's FeatureStore on the platform's registry, with reads and pushes delegated to `platform`."""

    def __init__(self, platform):
        super().__init__(config=platform.runtime.feast.config)
        self.platform = platform

    def get_online_features(self, features, entity_rows, full_feature_names: bool = False,
                            include_feature_view_version_metadata: bool = False) -> OnlineResponse:
        proto = GetOnlineFeaturesResponse()
        for name, dtype, values, statuses, stamps_ns in self._columns(features, entity_rows, full_feature_names):
            _append(proto, name, values, dtypes.value_type(dtype), [STATUS[s] for s in statuses], stamps_ns)
        return OnlineResponse(proto)

    def online_response_dict(self, features, entity_rows, full_feature_names: bool = False) -> dict:
        """What Feast's `/get-online-features` answers (`convert_response_to_dict` of the protobuf above),
        built straight from the platform's read with Feast's own value and timestamp formatting
        (feast_format/serving.py), without the protobuf round trip (about a third of the server's CPU;
        benchmarks/report.md). Equal by test."""
        names, results = [], []
        for name, _, values, statuses, stamps_ns in self._columns(features, entity_rows, full_feature_names):
            names.append(name)
            result = {"values": json_values(values), "statuses": status_names(STATUS[s] for s in statuses)}
            if stamps_ns:  # Feast's document leaves out empty timestamp lists
                result["event_timestamps"] = timestamp_texts(stamps_ns)
            results.append(result)
        return {"results": results, "metadata": {"feature_names": names}}

    def _columns(self, features, entity_rows, full_feature_names: bool):
        """The platform's read as the response's columns, in Feast's order (entity keys, then the features):
        (name, dtype, values, platform statuses, feature timestamps in ns or None)."""
        refs = features.name if isinstance(features, FeatureService) else features
        rows = _rows(entity_rows)
        data = self.platform.online_features(refs, rows, with_metadata=True, full_feature_names=full_feature_names,
                                             output="dict")
        repo = self.platform.runtime.repo
        plan = request_time.plan(repo, refs, full_feature_names)
        stored = [repo.view(v) for v in dict.fromkeys(ref.partition(":")[0] for ref in plan.stored)]
        request_views = {v.name: v for v in plan.request_views}
        for key, dtype in dict((s.entity.join_key, s.entity.dtype) for s in stored).items():
            yield key, dtype, data.get(key, []), [PRESENT] * len(rows), [None] * len(rows)
        for o in plan.outputs:
            view = request_views[o.view] if o.request else repo.view(o.view)
            yield (o.column, view.field(o.feature).dtype, data[o.column], data[status_column(o.column)],
                   data[event_timestamp_column(o.column)])

    async def get_online_features_async(self, features, entity_rows, full_feature_names: bool = False,
                                        include_feature_view_version_metadata: bool = False) -> OnlineResponse:
        return await asyncio.to_thread(self.get_online_features, features, entity_rows, full_feature_names)

    def push(self, push_source_name: str, df, allow_registry_cache: bool = True, to: PushMode = PushMode.ONLINE,
             transform_on_write: bool = True):
        """Online (or online and offline): the platform's low-latency path, which writes online now and
        offline from its log, so a pushed event never reaches only one side. Offline: the source's
        transport, which the view's Dagster sensor ingests."""
        return self.platform.push(push_source_name, df, direct=to != PushMode.OFFLINE)

    async def push_async(self, push_source_name: str, df, allow_registry_cache: bool = True,
                         to: PushMode = PushMode.ONLINE, transform_on_write: bool = True):
        return await asyncio.to_thread(self.push, push_source_name, df, allow_registry_cache, to)


def _rows(entity_rows) -> list[dict]:
    """Feast accepts columns (`{key: [values]}`, what its server passes) or a list of row dicts."""
    if isinstance(entity_rows, dict):
        keys = list(entity_rows)
        lengths = {k: len(entity_rows[k]) for k in keys}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{str(k)[:40]!r}: {n}" for k, n in list(lengths.items())[:5])
            raise InvalidEntityError(f"entity columns must have one value per row; their lengths differ ({shown}"
                                     f"{', ...' if len(lengths) > 5 else ''})")
        return [dict(zip(keys, values)) for values in zip(*(entity_rows[k] for k in keys))]
    return [dict(r) for r in entity_rows]


def _append(proto: GetOnlineFeaturesResponse, name: str, values: list, value_type: ValueType, statuses: list,
            stamps_ns: list) -> None:
    proto.metadata.feature_names.val.append(name)
    vector = proto.results.add()
    vector.values.extend(python_values_to_proto_values(values, value_type))
    vector.statuses.extend(statuses)
    for ns in stamps_ns:
        ts = Timestamp()
        if ns is not None:
            ts.FromNanoseconds(int(ns))
        vector.event_timestamps.append(ts)
