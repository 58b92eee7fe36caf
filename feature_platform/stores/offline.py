"""Offline tables: one row per (entity, feature timestamp), written a whole partition at a time.

A partition write replaces exactly that partition, atomically: a reader sees the old partition
or the new one, never a mix and never duplicates. A range run writes through `partition_writes`, which
keeps what each partition held before until the run settles, so a run that cannot complete its online
write can put the offline partitions back as they were.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from datetime import date

import pandas as pd

from feature_platform.spec import FeatureViewSpec
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP, day_end


class OfflineStore(ABC):
    """Where a feature view's history lives: the input of training sets."""

    kind: str

    @abstractmethod
    def write_partition(self, spec: FeatureViewSpec, day: date, rows: pd.DataFrame) -> None:
        """Replace partition `day` of `spec` with `rows` (join key, features, event/created timestamps)."""

    @abstractmethod
    def partition_writes(self, spec: FeatureViewSpec) -> PartitionWrites:
        """A journal for one run's partition replacements of `spec` (see `PartitionWrites`)."""

    @abstractmethod
    def write_batch(self, spec: FeatureViewSpec, batch_id: str, rows: pd.DataFrame) -> None:
        """Upsert a pushed batch on (join key, event_timestamp), the last write winning: the same events
        written again, in this batch or a later one (pushes are delivered at least once), stay stored once."""

    @abstractmethod
    def read(self, spec: FeatureViewSpec, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        """Rows of partitions `start..end` (inclusive; None = unbounded), sorted by event timestamp then key."""

    @abstractmethod
    def register_duckdb(self, con, spec: FeatureViewSpec, name: str, lo: pd.Timestamp, hi: pd.Timestamp) -> None:
        """Expose rows with `lo <= event_timestamp <= hi` to DuckDB connection `con` as relation `name`."""

    def partition_files(self, spec: FeatureViewSpec, lo: pd.Timestamp, hi: pd.Timestamp) -> list[tuple[pd.Timestamp, str]] | None:
        """A batch view's partitions stamped within `[lo, hi]` as (the timestamp of every row, local Parquet file),
        for a reader that takes only the rows it needs; None where the table is not kept as such files."""
        return None

    @abstractmethod
    def spark_frame(self, spark, spec: FeatureViewSpec, lo: pd.Timestamp, hi: pd.Timestamp):
        """Rows with `lo <= event_timestamp <= hi` as a Spark DataFrame in the reading schema."""

    @abstractmethod
    def newest_timestamp(self, spec: FeatureViewSpec) -> pd.Timestamp | None:
        """The newest feature timestamp in the table (None when empty)."""

    @abstractmethod
    def partitions(self, spec: FeatureViewSpec) -> list[date]:
        """Partition days present in the table, ascending."""

    def sync_columns(self, spec: FeatureViewSpec) -> list[str]:
        """Adapt the stored table to an additive change of `spec` (new fields, looser nullability); returns
        what was done. Parquet segments need nothing: a column missing from older files reads as null."""
        return []

    def columns(self, spec: FeatureViewSpec) -> list[str]:
        return [spec.entity.join_key, *spec.feature_names, EVENT_TIMESTAMP, CREATED_TIMESTAMP]

    @staticmethod
    def partition_timestamp(day: date) -> pd.Timestamp:
        return pd.Timestamp(day_end(day))

    @classmethod
    def time_bounds(cls, spec: FeatureViewSpec, start: date | None, end: date | None):
        """Inclusive feature-timestamp bounds of partition days `start..end` (None = unbounded).

        A batch view's partition D has the single feature timestamp D+1 00:00; a pushed view's
        day D holds the events of [D 00:00, D+1 00:00).
        """
        pushed = spec.push_source is not None
        lo = None if start is None else cls.partition_timestamp(start) - (pd.Timedelta(days=1) if pushed else pd.Timedelta(0))
        hi = None if end is None else cls.partition_timestamp(end) - (pd.Timedelta(microseconds=1) if pushed else pd.Timedelta(0))
        return lo, hi


class PartitionWrites(ABC):
    """The partition replacements of one range run, undoable until the run settles.

    `write` replaces a partition as `OfflineStore.write_partition` does, having first put aside what the
    partition held (nothing, for a new one). `settle(keep)` then keeps the days in `keep` and puts every other
    day this journal touched back as it was (a day whose write failed too: it may have landed), and forgets
    the journal. A process killed before it settles leaves its journal behind (see docs/operations.md).
    """

    @abstractmethod
    def write(self, day: date, rows: pd.DataFrame) -> None:
        """Replace partition `day` with `rows`, keeping its previous contents until `settle`."""

    @abstractmethod
    def settle(self, keep: Collection[date]) -> None:
        """Keep the days in `keep`, restore the other touched days' previous contents, drop the journal."""
