"""The services push transport: one Redis Stream per push source, read through a consumer group.

A producer adds one entry per batch: `XADD feature_platform:push:<source> * rows <JSON array of
row objects>` (what `FeaturePlatform.push` does). The entry id is the batch id. Listing pending
batches delivers new entries to the group (XREADGROUP) and returns everything delivered but not yet
acknowledged (XPENDING); a batch is acknowledged (XACK) only after its rows are safely written, so a
crash anywhere before leaves it pending. Bad rows go to `<stream>:dead_letter` with a reason each.

Every command and script here touches a single key (the stream, or its dead-letter stream, written on
its own), so the transport works unchanged on a Redis Cluster, where the two streams may live on
different masters.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import redis

from feature_platform.config import Settings
from feature_platform.stores.landing import MalformedBatchError, records_frame, rows_json

GROUP = "feature_platform"
CONSUMER = "ingest"
_SCAN = 1000
_STREAM_ID = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")
_ADD_ONCE = """
for _, entry in ipairs(redis.call('XREVRANGE', KEYS[1], '+', ARGV[1])) do
  local f = entry[2]
  for i = 1, #f, 2 do
    if f[i] == 'batch_id' and f[i + 1] == ARGV[2] then return entry[1] end
  end
end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
"""


class RedisStreamTransport:
    def __init__(self, settings: Settings, source: str):
        from feature_platform.stores.online import BudgetRetry, cluster_client

        # The online store's write budget bounds every command here too: a frozen Redis fails a push, it does not hang it.
        budget = settings.online_write_timeout_sec
        timeouts = {"socket_timeout": min(10, budget), "socket_connect_timeout": min(5, budget)}
        retry = BudgetRetry(budget, 3, (1.0, 10.0))  # redis-py's default retries, within the budget
        if settings.redis_cluster_nodes:  # every command below touches one key, so each goes to its slot's master
            self.client = cluster_client(settings, f"the push stream of {source!r}", retry=retry, **timeouts)
        else:
            self.client = redis.Redis(host=settings.redis_host, port=settings.redis_port, db=settings.redis_db,
                                      password=settings.redis_password or None, retry=retry, **timeouts)
        self.stream = f"feature_platform:push:{source}"
        self.dead_stream = f"{self.stream}:dead_letter"

    def _ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def write(self, batch: pd.DataFrame, batch_id: str | None = None) -> str:
        return self.client.xadd(self.stream, {"rows": rows_json(batch)}).decode()

    def pending(self) -> list[str]:
        self._ensure_group()
        while self.client.xreadgroup(GROUP, CONSUMER, {self.stream: ">"}, count=_SCAN):
            pass  # delivered entries stay in the group's pending list until acknowledged
        ids: list[str] = []
        start = "-"
        while True:
            chunk = self.client.xpending_range(self.stream, GROUP, min=start, max="+", count=_SCAN)
            ids += [entry["message_id"].decode() for entry in chunk]
            if len(chunk) < _SCAN:
                return ids
            start = "(" + ids[-1]

    def _fields(self, batch_id: str) -> dict:
        entries = self.client.xrange(self.stream, min=batch_id, max=batch_id)
        if not entries:
            raise MalformedBatchError(f"batch {batch_id} is not in stream {self.stream}")
        return {k.decode(): v for k, v in entries[0][1].items()}

    def read(self, batch_id: str) -> pd.DataFrame:
        fields = self._fields(batch_id)
        try:
            return records_frame(json.loads(fields["rows"]))  # exact values, as producers sent them
        except (KeyError, ValueError) as exc:
            raise MalformedBatchError(f"batch {batch_id} of {self.stream} cannot be read: {exc}") from exc

    def dead_letter(self, batch_id: str, rows: pd.DataFrame) -> str:
        return self._dead_letter_once(batch_id, {"rows": rows.astype(str).to_json(orient="records")})

    def dead_letter_file(self, batch_id: str, reason: str) -> str:
        raw = self.client.xrange(self.stream, min=batch_id, max=batch_id)
        payload = {k.decode(): v.decode(errors="replace") for k, v in raw[0][1].items()} if raw else {}
        return self._dead_letter_once(batch_id, {"reason": reason, "raw": json.dumps(payload)})

    def _dead_letter_once(self, batch_id: str, fields: dict) -> str:
        """XADD to the dead-letter stream unless this batch is there already: a batch replayed after a
        crash before its XACK must not list its bad rows twice. A batch id is a stream id, so its
        dead letters are at or after its time; the scan covers only those, in one key (cluster-safe)."""
        fields = {"batch_id": batch_id, **fields}
        if not _STREAM_ID.fullmatch(batch_id):  # not from a stream (all rows of a direct push rejected): never replayed
            return self.client.xadd(self.dead_stream, fields).decode()
        args = [x for item in fields.items() for x in item]
        return self.client.eval(_ADD_ONCE, 1, self.dead_stream, batch_id.split("-")[0], batch_id, *args).decode()

    def ack(self, batch_id: str) -> None:
        self.client.xack(self.stream, GROUP, batch_id)

    def dead_letters(self) -> list[dict]:
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in self.client.xrange(self.dead_stream)]
