"""Partitions of a feature view: compute, validate, then write offline and online (or nothing).

Validation runs before any write. On failure nothing is written anywhere for the partition; the
failing rows go to quarantine and the error names the view, column, check and sample rows. A range run
that fails part-way keeps the days before the failure in both stores, or none of them (`materialize_range`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pandera.pandas as pa

from feature_platform.compat.pandera_internals import validate as validate_frame
from feature_platform.compute.partition_stats import SortedValues, feature_stats
from feature_platform.derive.pandera_schema import ordered_unique, pandera_schema, uncoerced_unit
from feature_platform.errors import ValidationFailedError
from feature_platform.runtime import Runtime
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.quarantine import quarantine
from feature_platform.util.memory import release_unused
from feature_platform.util.phases import phase
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP, day_end

SAMPLE_ROWS = 5


@dataclass
class PartitionResult:
    view: str
    day: date
    rows: int
    closing_rows: int
    rows_online: int
    duration_sec: float
    stats: dict = field(default_factory=dict)


def validate(spec: FeatureViewSpec, rows: pd.DataFrame) -> pd.DataFrame | None:
    """Pandera failure cases of `rows` (one row per failing value), or None when valid."""
    try:
        # Rows whose timestamps need no coercion are validated in place; a copy is freed at once, not at a collection.
        unit = uncoerced_unit(rows)
        validate_frame(pandera_schema(spec, unique=not ordered_unique(spec, rows), timestamp_unit=unit), rows,
                       inplace=unit is not None)
        return None
    except pa.errors.SchemaErrors as exc:
        return exc.failure_cases


def failure_message(spec: FeatureViewSpec, day: date, rows: pd.DataFrame, failures: pd.DataFrame) -> str:
    lines = [f"feature view {spec.name!r}, partition {day}: {len(failures)} value(s) failed validation; nothing was written"]
    for (column, check), group in failures.groupby(["column", "check"], dropna=False, sort=False):
        idx = [i for i in group["index"].tolist() if i is not None and i == i][:SAMPLE_ROWS]
        sample = rows.loc[[i for i in idx if i in rows.index]]
        lines.append(f"  column {column!r} check {check!r}: {len(group)} failing; sample rows:")
        lines.append("    " + sample.to_string(max_cols=12).replace("\n", "\n    ") if len(sample) else "    (table-level)")
    return "\n".join(lines)


def check_partition(runtime: Runtime, spec: FeatureViewSpec, day: date, rows: pd.DataFrame) -> None:
    """Raise ValidationFailedError (the failing rows quarantined) unless `rows` pass the view's schema."""
    failures = validate(spec, rows)
    if failures is None:
        return
    bad_index = failures["index"].dropna().unique()
    bad = rows.loc[rows.index.intersection(bad_index)]
    where = quarantine(runtime.settings.quarantine_dir, spec.name, day.isoformat(), bad, failures)
    raise ValidationFailedError(
        failure_message(spec, day, rows, failures) + f"\n  quarantined in {where}",
        view=spec.name, partition=day.isoformat(), failures=failures, quarantine_path=str(where),
    )


def _result(spec: FeatureViewSpec, day: date, rows: pd.DataFrame, online: int, started: float,
            sorted_values: SortedValues) -> PartitionResult:
    return PartitionResult(
        view=spec.name,
        day=day,
        rows=len(rows),
        closing_rows=_closing_rows(spec, rows),
        rows_online=online,
        duration_sec=time.perf_counter() - started,
        stats=feature_stats(spec, rows, sorted_values),
    )


def materialize_range(runtime: Runtime, spec: FeatureViewSpec, first: date, last: date,
                      progress: Callable[[int, int, date], None] | None = None,
                      on_written: Callable[[date, pd.DataFrame, SortedValues], None] | None = None
                      ) -> list[PartitionResult]:
    """Materialize partitions `first..last` in one pass (a backfill run).

    Days are computed a chunk at a time (`Runtime.compute_chunks`), each validated before its offline
    partition is replaced (then `on_written(day, rows, sorted_values)`: its numeric columns' sorted values, shared
    with its statistics). Online, only each entity's newest row of the range is
    written, once at the end: the older rows would be overwritten within the same run anyway.

    A run that fails part-way keeps the days before the failure in both stores or in neither, so the stores
    and what the caller records agree (`_keep_or_restore`): whatever failed (a raw file, the compute, a
    validation, an offline write, `on_written`), the days already written offline are written online and
    listed in the exception's `completed`; nothing of the failing day or later is kept. If the online write
    fails, the offline partitions of the run are put back as they were and `completed` is empty.
    Memory: one chunk of days (the days' rows are views of the chunk's frame; computing ahead, the next one too,
    being computed), plus one row per entity.
    """
    runtime.check_raw_days(spec, first, last)  # no partial window: refused before anything is read or written
    total = (last - first).days + 1
    done: list[PartitionResult] = []  # rows_online is filled in once the online write is done
    newest: pd.DataFrame | None = None  # each entity's newest row written offline so far
    created = pd.Timestamp(datetime.now(timezone.utc))
    writes = runtime.offline.partition_writes(spec)
    chunks = runtime.compute_chunks(spec, first, last)
    try:
        for chunk in chunks:
            # One Pandera pass over the chunk (most of its cost is per call); on a failure, day by day to
            # report the first bad day as its own partition would, after writing the days before it.
            with phase("validate"):
                valid = validate(spec, chunk.frame) is None
            chunk.frame[CREATED_TIMESTAMP] = created
            written = 0  # rows of the chunk's days written offline
            try:
                for i, (day, rows) in enumerate(chunk):
                    started = time.perf_counter()
                    if not valid:
                        with phase("validate"):
                            check_partition(runtime, spec, day, rows.drop(columns=[CREATED_TIMESTAMP]))
                    with phase("write_offline"):
                        writes.write(day, rows)
                    written = chunk.bounds[i + 1]
                    with phase("checks"):  # the partition's statistics, and the caller's checks (drift)
                        sorted_values = SortedValues(rows)  # each numeric column sorted once, for both
                        done.append(_result(spec, day, rows, 0, started, sorted_values))
                        if on_written:
                            on_written(day, rows, sorted_values)
                    if progress:
                        progress(len(done), total, day)
            finally:
                if written:
                    with phase("write_online"):
                            newest = _newest(spec, newest, chunk.frame if written == len(chunk.frame)
                                         else chunk.frame.iloc[:written])
            chunk = rows = sorted_values = None  # released before the next chunk is computed, not after
            release_unused()  # and given back, so the next chunk's peak does not stack on this one's leftovers
    except BaseException as exc:
        chunks.close()  # the chunk being computed ahead is waited for and dropped before anything is restored
        _keep_or_restore(runtime, spec, writes, done, newest, exc)
        raise
    try:
        with phase("write_online"):
            _sync_online(runtime, spec, done, newest)
    except BaseException as exc:
        _restore(spec, writes, done, exc, "its online write failed")
        raise
    _settle(spec, writes, {r.day for r in done}, None)
    release_unused()  # the run's leftovers given back: the next run in this process does not stack its peak on them
    return done


def _keep_or_restore(runtime: Runtime, spec: FeatureViewSpec, writes, done: list[PartitionResult],
                     newest: pd.DataFrame | None, exc: BaseException) -> None:
    """After a failure before the online write: write the days done so far online and keep them, or, if
    that fails too (or the run was interrupted), restore everything the run replaced offline."""
    if not isinstance(exc, Exception):  # interrupted (e.g. the run was terminated): no more writes
        _restore(spec, writes, done, exc, "it was interrupted")
        return
    try:
        _sync_online(runtime, spec, done, newest)
    except Exception as online:
        _restore(spec, writes, done, exc, f"writing the days before the failure online failed too ({online})")
        return
    _settle(spec, writes, {r.day for r in done}, exc)
    exc.completed = done
    if done:
        exc.add_note(f"{spec.name!r}: partitions {done[0].day}..{done[-1].day} ({len(done)}) were written offline "
                     "and online before the failure and are kept; nothing after them")


def _restore(spec: FeatureViewSpec, writes, done: list[PartitionResult], exc: BaseException, why: str) -> None:
    """Put back what the run replaced offline: nothing of it is kept (`completed` is empty)."""
    _settle(spec, writes, (), exc)
    exc.completed = []
    if done:
        exc.add_note(f"{spec.name!r}: {why}; the offline partitions {done[0].day}..{done[-1].day} this run had "
                     "written were restored, so no partition of this run is kept (re-run the range)")


def _settle(spec: FeatureViewSpec, writes, keep, exc: BaseException | None) -> None:
    """Settle the run's offline journal; a failure to is noted on the run's error, or, for a run that
    succeeded, only logged (its partitions are written in both stores: the journal is left behind)."""
    try:
        writes.settle(keep)
    except Exception as failed:  # noqa: BLE001 - the store's own failure, reported beside the run's
        if exc is None:
            logging.getLogger(__name__).warning("%s: the run's offline journal could not be dropped: %s", spec.name, failed)
        else:
            exc.add_note(f"{spec.name!r}: restoring the offline partitions this run replaced failed too ({failed}); "
                         "re-run the range")


def _newest(spec: FeatureViewSpec, newest: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame:
    """Each entity's row with the latest feature timestamp, of `newest` and then `rows` (in day order)."""
    latest = rows.drop_duplicates(spec.entity.join_key, keep="last")
    if newest is not None:
        latest = pd.concat([newest, latest], ignore_index=True).drop_duplicates(spec.entity.join_key, keep="last")
    return latest.reset_index(drop=True)


def _sync_online(runtime: Runtime, spec: FeatureViewSpec, done: list[PartitionResult],
                 latest: pd.DataFrame | None) -> list[PartitionResult]:
    """Write each entity's newest row of the completed days online; `done` with the rows each day sent
    (a single partition: the rows written, after newest-wins)."""
    if not done or latest is None or latest.empty:
        return done
    written = _write_online(runtime, spec, latest)
    if len(done) == 1:  # one partition: what newest-wins let through (rows with a newer value online are kept)
        done[0].rows_online = written
        return done
    sent = latest[EVENT_TIMESTAMP].value_counts()
    for result in done:
        result.rows_online = int(sent.get(pd.Timestamp(day_end(result.day)), 0))
    return done


def _write_online(runtime: Runtime, spec: FeatureViewSpec, latest: pd.DataFrame) -> int:
    """An engine that writes from its workers (Spark's executors) does so when the online store takes such writes
    (Redis); otherwise the driver writes (the embedded profile's SQLite online store is one local file)."""
    online = runtime.writable_online()
    sync = getattr(runtime.engine, "sync_online", None)
    if sync is not None and runtime.backends.executor_online_writes:
        from feature_platform.backends.spark_sync import sync_online

        return sync(spec, latest, online, sync_online)
    return online.write(spec, latest)


def _closing_rows(spec: FeatureViewSpec, rows: pd.DataFrame) -> int:
    if spec.aggregation is None:
        return 0
    first = spec.aggregation.aggs[0]
    if first.empty_value is None:
        return 0
    column = rows[first.feature]
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iuf" and isinstance(first.empty_value, (int, float)):
        return int(np.count_nonzero(column.to_numpy() == first.empty_value))  # numpy's compare, without a Series
    return int((column == first.empty_value).sum())

