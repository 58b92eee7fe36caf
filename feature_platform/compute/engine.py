"""Compute engines: who executes a view's declared aggregation, chosen per deployment by configuration.

An engine turns the spec's `WindowAggregation` and a run of partition days into a `DayChunk` (the rows of
each day, sorted by key, in the spec's dtypes). Everything after that (Pandera validation, offline and
online writes, metadata) is the same code whichever engine computed the rows, so a view never changes
when its deployment moves from one machine (`pandas`) to a cluster (`spark`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol

import pandas as pd

from feature_platform.compute.chunks import DayChunk
from feature_platform.compute.window_aggregate import aggregate_chunk, prepare, raw_range_for
from feature_platform.config import Settings
from feature_platform.repo import Repository
from feature_platform.sources import reader_for
from feature_platform.spec import FeatureViewSpec
from feature_platform.util.memory import release_unused
from feature_platform.util.phases import phase


class ComputeEngine(Protocol):
    name: str

    def compute_chunk(self, spec: FeatureViewSpec, days: Sequence[date]) -> DayChunk:
        """The feature rows of `days` (consecutive, ascending), read from the view's raw source."""


class PandasEngine:
    """The single-machine engine: pyarrow reads the window's raw events, numpy/pandas aggregate them."""

    name = "pandas"

    def __init__(self, settings: Settings, repo: Repository):
        self.settings = settings
        self.repo = repo

    def read_raw(self, spec: FeatureViewSpec, first: date, last: date) -> pd.DataFrame:
        """Raw events of the view's declared source needed to compute partitions `first..last`, and nothing more."""
        start, end = raw_range_for(spec, first, last)
        return reader_for(self.repo.source_of(spec), self.settings, self.repo.directory).read(start, end)

    def compute_chunk(self, spec: FeatureViewSpec, days: Sequence[date]) -> DayChunk:
        with phase("read"):
            raw = self.read_raw(spec, days[0], days[-1])
            release_unused()  # the scan's buffers, freed: the aggregation's peak does not stack on them
        with phase("aggregate"):
            raw = prepare(spec, raw, days, consume=True)  # the raw frame, freed column by column as its events are made,
            release_unused()  # and given back (Arrow's pool holds its columns): the pass's arrays do not stack on it
            chunk = aggregate_chunk(spec, raw, days)
            raw = None
            release_unused()  # nor does validation's and the writes' on the aggregation's working memory
            return chunk


def engine_for(settings: Settings, repo: Repository) -> ComputeEngine:
    """The engine `FEATURE_PLATFORM_ENGINE` names (PySpark is imported only when it is chosen)."""
    if settings.engine == "spark":
        from feature_platform.compute.spark_engine import SparkEngine

        return SparkEngine(settings, repo)
    return PandasEngine(settings, repo)
