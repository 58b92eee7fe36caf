"""Landing pushed batches: validate, write offline (idempotent per batch), write online (newest wins),
dead-letter the bad rows, and only then acknowledge the batch.

A crash anywhere before the acknowledgement leaves the batch pending; processing it again rewrites
the same offline segment and the same online values, so nothing is lost and nothing is duplicated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from feature_platform.push import prepare_batch
from feature_platform.runtime import Runtime
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.landing import LandingDirectory, MalformedBatchError, new_batch_id
from feature_platform.stores.unavailable import store_errors


@dataclass
class IngestResult:
    batch_id: str
    received: int
    accepted: int
    rejected: int
    duplicates: int
    written_online: int
    lag_sec: float | None  # now minus the newest accepted event time
    duration_sec: float
    malformed: str | None = None


def transport_for(runtime: Runtime, spec: FeatureViewSpec):
    """The push transport of the profile: a landing directory (embedded) or a Redis Stream (services)."""
    if runtime.settings.profile == "services":
        from feature_platform.stores.redis_stream import RedisStreamTransport

        return RedisStreamTransport(runtime.settings, spec.push_source)
    return LandingDirectory(runtime.settings.home, spec.push_source)


def ingest_batch(runtime: Runtime, spec: FeatureViewSpec, batch_id: str) -> IngestResult:
    """Process one landed batch of `spec`'s push source."""
    started = time.perf_counter()
    transport = transport_for(runtime, spec)
    with store_errors(runtime.settings, f"reading batch {batch_id}"):
        try:
            raw = transport.read(batch_id)
        except MalformedBatchError as exc:
            transport.dead_letter_file(batch_id, str(exc))
            transport.ack(batch_id)
            return IngestResult(batch_id, 0, 0, 0, 0, 0, None, time.perf_counter() - started, malformed=str(exc))
    result = land(runtime, spec, raw, batch_id, transport)
    transport.ack(batch_id)
    result.duration_sec = time.perf_counter() - started
    return result


def push_direct(runtime: Runtime, spec: FeatureViewSpec, batch: pd.DataFrame) -> IngestResult:
    """The low-latency path: validate and write online and offline now, in the caller's process."""
    started = time.perf_counter()
    result = land(runtime, spec, batch, new_batch_id(), transport_for(runtime, spec))
    result.duration_sec = time.perf_counter() - started
    return result


def land(runtime: Runtime, spec: FeatureViewSpec, raw: pd.DataFrame, batch_id: str, transport) -> IngestResult:
    prepared = prepare_batch(spec, raw)
    written = 0
    if not prepared.accepted.empty:
        runtime.offline.write_batch(spec, batch_id, prepared.accepted)
        written = runtime.online.write(spec, prepared.accepted)
    if not prepared.rejected.empty:
        transport.dead_letter(batch_id, prepared.rejected)
    newest = prepared.newest_event
    lag = None if newest is None else (pd.Timestamp(datetime.now(timezone.utc)) - newest).total_seconds()
    return IngestResult(batch_id, len(raw), len(prepared.accepted), len(prepared.rejected), prepared.duplicates,
                        written, lag, 0.0)
