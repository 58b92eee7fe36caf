"""The platform's stores for one deployment, built once from Settings; what assets and the facade share."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import cached_property

import pandas as pd
from feast import FeatureStore

from feature_platform.backends import Backends, build_backends
from feature_platform.compute.engine import ComputeEngine, engine_for
from feature_platform.compute.window_aggregate import DayChunk
from feature_platform.config import Settings
from feature_platform.repo import Repository, load_repository
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.offline import OfflineStore
from feature_platform.stores.online import OnlineStore
from feature_platform.util.phases import phase

_apply_lock = threading.Lock()
_runtimes: dict[Settings, Runtime] = {}
_runtimes_lock = threading.Lock()
# Partition days aggregated per pass over the raw events: ~0.8M feature rows at 100k users, and each pass re-reads
# only the window's days before it. A year of 100k users' sessions, 4 runs of 92 days in one process: peak RSS
# 595-603 MB at 16 days, 555 MB at 12, ~3% more time (each pass re-reads its window's look-back). Computing one
# chunk ahead (`compute_ahead`), 2 runs: 8 days 592-602 MB, 10 days 612-619 MB, 12 days 638-650 MB with the time
# 22.0-23.0 s (8 days 25.3-28.0 s, none ahead 27.9-30.0 s); a week of drift baselines kept as counts, not values,
# brought 12 days back to 577-579 MB (the year backfill, 4 runs: 593 MB). With the year's 4 runs at 593-614 MB
# at 12 days, 10 days: 564-566 MB (11: 575-585), the time within the noise of 12 (2 interleaved rounds of the 4
# runs: 46.1 and 43.8 s vs 45.6 and 47.9 s; each pass reads 18 days for 10, not 20 for 12).
COMPUTE_CHUNK_DAYS = 10


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._applied = False
        self.transports: dict = {}  # push transports by source name (see ingest.transport_for)

    @cached_property
    def backends(self) -> Backends:
        """This deployment's backends (the profile is chosen there, once)."""
        return build_backends(self.settings)

    @cached_property
    def repo(self) -> Repository:
        """The feature repository's definitions (`FEATURE_PLATFORM_REPO`; the example repository by default)."""
        return load_repository(self.settings.repo_location)

    def read_source(self, name: str, start, end) -> pd.DataFrame:
        """The rows of declared source `name` with `start <= time < end`, checked (for label functions too)."""
        from feature_platform.sources import reader_for

        return reader_for(self.repo.source(name), self.settings, self.repo.directory).read(start, end)

    def check_raw_days(self, spec: FeatureViewSpec, first: date, last: date) -> None:
        """Partitions `first..last` of `spec` read only raw days its source holds (or days before the source's
        history), else `MissingSourceDaysError`: a window is never computed from part of its days."""
        from feature_platform.sources import reader_for
        from feature_platform.sources.observe import check_window_days

        source = self.repo.source_of(spec)
        reader = reader_for(source, self.settings, self.repo.directory)
        check_window_days(reader, spec.name, source.start, spec.aggregation.window.days, first, last)

    @cached_property
    def offline(self) -> OfflineStore:
        return self.backends.offline_store()

    @cached_property
    def engine(self) -> ComputeEngine:
        """The compute engine of this deployment (`FEATURE_PLATFORM_ENGINE`)."""
        return engine_for(self.settings, self.repo)

    @cached_property
    def feast(self) -> FeatureStore:
        return self.backends.feature_store()

    @cached_property
    def online(self) -> OnlineStore:
        """The online store: a read registers nothing, a write applies the registry first (`apply`)."""
        features = self.backends.online_features(self.feast)
        return OnlineStore(self.feast, features, self.backends.watermarks(features), self.settings,
                           before_write=self.apply)

    def apply(self) -> None:
        """Register every spec's Feast objects (once per process), the way `feature-platform apply` does:
        under the registry lock, with history, and refusing (`BreakingChangeError`) a breaking change
        to a registered view in place, so a materialization never changes a view behind its consumers.
        Called by what writes (a materialization, a push, the feature server's start), never by a read."""
        from feature_platform.versioning.workflow import apply

        with _apply_lock:
            if not self._applied:
                apply(self, via="auto-apply")

    def mark_applied(self) -> None:
        self._applied = True

    def writable_online(self) -> OnlineStore:
        """The online store after the registry is applied: what a write (materialization, push) uses."""
        self.apply()
        return self.online

    def compute_chunks(self, spec: FeatureViewSpec, first: date, last: date) -> Iterator[DayChunk]:
        """Yield the partition days of `first..last` as `DayChunk`s of `COMPUTE_CHUNK_DAYS` days, in order: raw
        events are read and aggregated a chunk (plus its window) at a time by the deployment's engine, so memory
        stays bounded however long the range.

        With `compute_ahead` (the default), the next chunk is computed on a thread while the caller works on the
        one yielded, at most one ahead: the engine's reads and numpy/Arrow kernels release the GIL, so on two cores
        the computing and the caller's validation, writes and checks overlap (a 92-day run: ~20% less time, one
        chunk more memory). A chunk that fails to compute raises when the caller asks for it, after the chunks
        before it, as without the thread. Closing the generator (the caller failed, or stopped) waits for the
        chunk being computed, which is then dropped: nothing runs on after the range run."""
        days = list(pd.date_range(first, last, freq="D").date)
        chunks = [days[i:i + COMPUTE_CHUNK_DAYS] for i in range(0, len(days), COMPUTE_CHUNK_DAYS)]
        if not self.settings.compute_ahead or len(chunks) < 2:
            for chunk in chunks:
                yield self.engine.compute_chunk(spec, chunk)
            return
        with ThreadPoolExecutor(1, thread_name_prefix=f"compute-{spec.name}") as ahead:
            pending = ahead.submit(self.engine.compute_chunk, spec, chunks[0])
            try:
                for following in [*chunks[1:], None]:
                    with phase("wait_compute"):
                        computed = pending.result()
                    pending = ahead.submit(self.engine.compute_chunk, spec, following) if following else None
                    yield computed
                    computed = None  # the caller's to hold, not this frame's while the next one is computed
            finally:
                if pending is not None:
                    pending.cancel()  # not started yet: never starts; running: waited for as the pool shuts down


def runtime_for(settings: Settings) -> Runtime:
    """The process's one runtime of `settings`: the facade, the asset bodies and the sensors of one deployment
    share its stores, connections and the once-per-process registry apply."""
    with _runtimes_lock:
        if settings not in _runtimes:
            _runtimes[settings] = Runtime(settings)
        return _runtimes[settings]
