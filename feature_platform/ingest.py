"""Landing pushed batches: validate, upsert offline on (entity, event time), write online (newest
wins), dead-letter the bad rows, and only then acknowledge the batch.

A crash anywhere before the acknowledgement leaves the batch pending; processing it again writes the
same events offline (an upsert: each stays stored once) and the same online values, so nothing is lost
and nothing is duplicated. The same holds for an event a producer sends again in a later batch.

The low-latency path (`push_direct`) validates, appends the accepted rows to the source's *direct
log* (a second transport, `<source>.direct`) and writes them online, all in the caller's call; the
log is drained into the offline store in bulk (`drain_direct_log`, one Dagster run per sensor tick,
not one per call), each entry upserted like a batch. Every path judges rows with `prepare_batch`, so
the drain accepts exactly what the low-latency call accepted and served.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from feature_platform.push import check_columns, prepare_batch, transportable
from feature_platform.push_rows import prepare_rows
from feature_platform.runtime import Runtime
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.landing import MalformedBatchError, new_batch_id, records_frame
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


DIRECT_PREFIX = "direct-"  # partition keys of the runs that drain a direct log


def transport_for(runtime: Runtime, spec: FeatureViewSpec, *, direct_log: bool = False):
    """The push transport of the deployment (a landing directory, a Redis Stream: see `backends`).
    `direct_log` gives the source's direct log instead (same kind of transport, its own name)."""
    source = spec.push_source + (".direct" if direct_log else "")
    cache = runtime.transports  # one client per source and process
    if source not in cache:
        backends = runtime.backends
        cache[source] = backends.direct_log(spec.push_source) if direct_log else backends.push_transport(source)
    return cache[source]


def ingest_batch(runtime: Runtime, spec: FeatureViewSpec, batch_id: str, transport=None) -> IngestResult:
    """Process one landed batch of `spec`'s push source (or of `transport`), then acknowledge it."""
    started = time.perf_counter()
    transport = transport or transport_for(runtime, spec)
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


def push_direct(runtime: Runtime, spec: FeatureViewSpec, batch) -> IngestResult:
    """The low-latency path: validate, log for the offline store, write online, in this call.

    The direct log is written before the online store, so a value served online is always on its
    way offline too (a crash in between is repaired by the drain, which also writes online). The bad
    rows are dead-lettered before the online write too: the drain cannot redo that for a crashed call.
    A small batch whose every row is good (the common case) skips pandas: `prepare_rows` judges it and
    `OnlineStore.write_logged` logs and writes it (on one Redis, in one round trip)."""
    started = time.perf_counter()
    rows = prepare_rows(spec, batch)
    if rows is not None:
        batch_id, written = runtime.writable_online().write_logged(spec, rows, transport_for(runtime, spec, direct_log=True))
        lag = (time.time_ns() - rows.newest_ns) / 1e9
        return IngestResult(batch_id, rows.received, len(rows), 0, rows.duplicates, written, lag,
                            time.perf_counter() - started)
    batch = as_frame(spec, batch)
    prepared = prepare_batch(spec, batch)
    batch_id, written = None, 0
    if not prepared.accepted.empty:
        batch_id = transport_for(runtime, spec, direct_log=True).write(prepared.accepted)
    batch_id = batch_id or new_batch_id()
    if not prepared.rejected.empty:
        transport_for(runtime, spec).dead_letter(batch_id, prepared.rejected)
    if not prepared.accepted.empty:
        with store_errors(runtime.settings, f"writing {spec.name!r} online"):
            written = runtime.writable_online().write(spec, prepared.accepted)
    return IngestResult(batch_id, len(batch), len(prepared.accepted), len(prepared.rejected), prepared.duplicates,
                        written, _lag(prepared), time.perf_counter() - started)


def push(runtime: Runtime, spec: FeatureViewSpec, batch, *, direct: bool):
    """`FeaturePlatform.push` of a DataFrame or a list of row dicts to `spec`'s push source: landed in its
    transport (the batch id), or with `direct` validated and written now (an `IngestResult`)."""
    if isinstance(batch, pd.DataFrame):
        batch = check_columns(spec, batch)  # text names: the dead-letter and the transports need them
    with store_errors(runtime.settings, f"pushing to {spec.push_source!r}"):  # the transports' Redis, too
        if direct:
            return push_direct(runtime, spec, batch)
        return transport_for(runtime, spec).write(transportable(as_frame(spec, batch)))


def as_frame(spec: FeatureViewSpec, batch) -> pd.DataFrame:
    """A pushed batch as a DataFrame with text column names: a list of row dicts becomes object columns holding
    the values as they are (`records_frame`, what the Redis Stream transport reads back)."""
    return batch if isinstance(batch, pd.DataFrame) else check_columns(spec, records_frame(batch))


def drain_direct_log(runtime: Runtime, spec: FeatureViewSpec, label: str | None = None) -> IngestResult:
    """Write every pending entry of the direct log offline (an upsert per entry), then ack it."""
    started = time.perf_counter()
    log = transport_for(runtime, spec, direct_log=True)
    total = IngestResult(label or f"{DIRECT_PREFIX}all", 0, 0, 0, 0, 0, None, 0.0)
    for entry in log.pending():
        one = ingest_batch(runtime, spec, entry, transport=log)
        total.received += one.received
        total.accepted += one.accepted
        total.rejected += one.rejected
        total.duplicates += one.duplicates
        total.written_online += one.written_online
        if one.lag_sec is not None:
            total.lag_sec = one.lag_sec if total.lag_sec is None else min(total.lag_sec, one.lag_sec)
    total.duration_sec = time.perf_counter() - started
    return total


def land(runtime: Runtime, spec: FeatureViewSpec, raw: pd.DataFrame, batch_id: str, transport) -> IngestResult:
    prepared = prepare_batch(spec, raw)
    written = 0
    if not prepared.accepted.empty:
        runtime.offline.write_batch(spec, batch_id, prepared.accepted)
        written = runtime.writable_online().write(spec, prepared.accepted)
    if not prepared.rejected.empty:
        transport.dead_letter(batch_id, prepared.rejected)
    return IngestResult(batch_id, len(raw), len(prepared.accepted), len(prepared.rejected), prepared.duplicates,
                        written, _lag(prepared), 0.0)


def _lag(prepared) -> float | None:
    """Ingestion lag: now minus the newest accepted event time."""
    newest = prepared.newest_event
    return None if newest is None else (pd.Timestamp(datetime.now(timezone.utc)) - newest).total_seconds()
