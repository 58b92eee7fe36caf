"""Stock Feast's own code where only its private names reach it, for the tests that check the platform against
Feast (private Feast names belong under feast_format/; checked with feast 0.67)."""

from __future__ import annotations

from feast import FeatureStore
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value


def parse_redis_connection_string(connection_string: str) -> tuple[list[dict], dict]:
    """(startup nodes, options) as Feast's Redis online store reads its `connection_string`."""
    return RedisOnlineStore._parse_connection_string(connection_string)


def overwrite_online_value(store: FeatureStore, view: str, entity_key: EntityKey, feature: str, value: Value) -> None:
    """Replace one stored online value through Feast's own online store, keeping its feature timestamp."""
    fv = store.get_feature_view(view)
    provider = store._get_provider()
    ((ts, values),) = provider.online_read(config=store.config, table=fv, entity_keys=[entity_key])
    values[feature] = value
    provider.online_store.online_write_batch(store.config, fv, [(entity_key, values, ts, None)], None)
