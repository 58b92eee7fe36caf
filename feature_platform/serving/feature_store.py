"""A Feast `FeatureStore` whose online reads and pushes go through the platform.

Feast's feature server calls `store.get_online_features` and `store.push`. Routed through the
platform, HTTP clients get exactly the semantics of `FeaturePlatform.online_features` and `push`:
a value older than its view's TTL comes back null with Feast's own `OUTSIDE_MAX_AGE` status (Feast's
Redis and SQLite reads ignore the TTL), and a push is validated, written newest-wins online and logged
offline (Feast's push overwrites online values unconditionally and skips validation).
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timezone

from feast import FeatureService, FeatureStore
from feast.data_source import PushMode
from feast.online_response import OnlineResponse
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus, GetOnlineFeaturesResponse
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from feature_platform import request_time
from feature_platform.specs import get_spec
from feature_platform.stores.online import EXPIRED, MISSING, PRESENT

VALUE_TYPE = {"int64": ValueType.INT64, "float32": ValueType.FLOAT, "float64": ValueType.DOUBLE,
              "string": ValueType.STRING, "bool": ValueType.BOOL}
STATUS = {PRESENT: FieldStatus.PRESENT, MISSING: FieldStatus.NOT_FOUND, EXPIRED: FieldStatus.OUTSIDE_MAX_AGE}


class PlatformFeatureStore(FeatureStore):
    """Feast's FeatureStore on the platform's registry, with reads and pushes delegated to `platform`."""

    def __init__(self, platform):
        super().__init__(config=platform.runtime.feast.config)
        self.platform = platform

    def get_online_features(self, features, entity_rows, full_feature_names: bool = False,
                            include_feature_view_version_metadata: bool = False) -> OnlineResponse:
        refs = features.name if isinstance(features, FeatureService) else list(features)
        rows = _rows(entity_rows)
        data = self.platform.online_features(refs, rows, with_metadata=True, full_feature_names=full_feature_names,
                                             output="dict")
        plan = request_time.plan(refs, full_feature_names)
        stored = [get_spec(v) for v in dict.fromkeys(ref.partition(":")[0] for ref in plan.stored)]
        request_views = {v.name: v for v in plan.request_views}
        proto = GetOnlineFeaturesResponse()
        for key, dtype in dict((s.entity.join_key, s.entity.dtype) for s in stored).items():
            _append(proto, key, data.get(key, []), VALUE_TYPE[dtype], [FieldStatus.PRESENT] * len(rows),
                    [None] * len(rows))
        for o in plan.outputs:
            view = request_views[o.view] if o.request else get_spec(o.view)
            _append(proto, o.column, data[o.column], VALUE_TYPE[view.field(o.feature).dtype],
                    [STATUS[s] for s in data[f"{o.column}__status"]], data[f"{o.column}__event_timestamp"])
        return OnlineResponse(proto)

    def online_response_dict(self, features, entity_rows, full_feature_names: bool = False) -> dict:
        """What Feast's `/get-online-features` answers (`convert_response_to_dict` of the protobuf above),
        built straight from the platform's read: the same JSON, without the protobuf round trip (about half
        the server's CPU at 100 entities; benchmarks/report.md). Equal to Feast's form by test."""
        refs = features.name if isinstance(features, FeatureService) else features
        rows = _rows(entity_rows)
        data = self.platform.online_features(refs, rows, with_metadata=True, full_feature_names=full_feature_names,
                                             output="dict")
        plan = request_time.plan(refs, full_feature_names)
        stored = [get_spec(v) for v in dict.fromkeys(ref.partition(":")[0] for ref in plan.stored)]
        names, results = [], []
        for key in dict.fromkeys(s.entity.join_key for s in stored):
            names.append(key)
            results.append({"values": data.get(key, []), "statuses": ["PRESENT"] * len(rows),
                            "event_timestamps": [_EPOCH] * len(rows)})
        for o in plan.outputs:
            names.append(o.column)
            results.append({"values": [_json_value(v) for v in data[o.column]],
                            "statuses": [STATUS_NAME[s] for s in data[f"{o.column}__status"]],
                            "event_timestamps": [_EPOCH if ns is None else _rfc3339(ns)
                                                 for ns in data[f"{o.column}__event_timestamp"]]})
        if not rows:  # Feast's document leaves out empty timestamp lists
            for result in results:
                del result["event_timestamps"]
        return {"results": results, "metadata": {"feature_names": names}}

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


STATUS_NAME = {PRESENT: "PRESENT", MISSING: "NOT_FOUND", EXPIRED: "OUTSIDE_MAX_AGE"}
_EPOCH = "1970-01-01T00:00:00Z"  # protobuf's unset Timestamp, as Feast's JSON shows it


def _json_value(value):
    """A value as Feast's JSON has it: floats that JSON cannot hold as protobuf JSON spells them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _rfc3339(ns: int) -> str:
    """Epoch nanoseconds as protobuf JSON's RFC 3339 (Feast's `_timestamp_to_str`): fraction digits 0/3/6/9."""
    seconds, nanos = divmod(int(ns), 1_000_000_000)
    if seconds == 0 and nanos == 0:
        return _EPOCH
    base = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos == 0:
        return base + "Z"
    if nanos % 1_000_000 == 0:
        return base + ".%03dZ" % (nanos // 1_000_000)
    if nanos % 1_000 == 0:
        return base + ".%06dZ" % (nanos // 1_000)
    return base + ".%09dZ" % nanos


def _rows(entity_rows) -> list[dict]:
    """Feast accepts columns (`{key: [values]}`, what its server passes) or a list of row dicts."""
    if isinstance(entity_rows, dict):
        keys = list(entity_rows)
        lengths = {len(entity_rows[k]) for k in keys}
        if len(lengths) > 1:
            raise ValueError(f"entity columns have different lengths: { {k: len(v) for k, v in entity_rows.items()} }")
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
