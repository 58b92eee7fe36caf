"""Skew guard: do the online values equal the offline table for the same feature timestamp?

Samples entities of one offline partition and reads them online. An entity whose online value
carries a newer feature timestamp was legitimately superseded and is skipped; one whose online
value is older, missing, or different at the same timestamp is a mismatch. In a range run, an entity that a later
partition of the run wrote again is superseded by that write, and counted so without being read back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from feature_platform.features import FeatureColumn
from feature_platform.runtime import Runtime
from feature_platform.spec import FeatureViewSpec
from feature_platform.vocabulary import event_timestamp_column

SAMPLE = 200


@dataclass
class SkewReport:
    sampled: int
    compared: int
    superseded: int
    mismatches: int
    examples: list[dict]

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0


def skew_report(runtime: Runtime, spec: FeatureViewSpec, day: date, sample: int = SAMPLE, seed: int = 0,
                offline: pd.DataFrame | None = None) -> SkewReport:
    """Sampled entities of partition `day` (`offline`: its rows, when already in memory) read back online."""
    return skew_reports(runtime, spec, {day: offline if offline is not None else runtime.offline.read(spec, day, day)},
                        sample, seed)[day]


def skew_reports(runtime: Runtime, spec: FeatureViewSpec, partitions: dict[date, pd.DataFrame], sample: int = SAMPLE,
                 seed: int = 0, superseded: Mapping[date, Collection] | None = None) -> dict[date, SkewReport]:
    """`skew_report` of several partitions (their offline rows, or samples of them) with one online read.

    The read is made as of the earliest partition's timestamp, so no value newer than a partition reads
    as expired for it; a value older than a partition is a mismatch whether or not it expired.
    `superseded`: per partition, entities that the same run wrote a newer row for (a later partition of a range
    run, written online with it). Newest-wins keeps a value at least that new online, so reading them back could
    only find them superseded: they count as such without being read.
    """
    key = spec.entity.join_key
    samples = {day: sample_rows(rows, sample, seed) for day, rows in partitions.items() if not rows.empty}
    reports = {day: SkewReport(0, 0, 0, 0, []) for day in partitions}
    if not samples:
        return reports
    newer = {day: rows[key].isin(list(superseded.get(day, ()))).to_numpy() if superseded else
             np.zeros(len(rows), dtype=bool) for day, rows in samples.items()}
    compare = {day: rows[~newer[day]].reset_index(drop=True) for day, rows in samples.items()}
    keys = list(dict.fromkeys(v for rows in compare.values() for v in rows[key].tolist()))
    if keys:
        columns = [FeatureColumn(spec.name, f, f) for f in spec.feature_names]
        earliest = runtime.offline.partition_timestamp(min(samples))
        online = runtime.online.read({spec.name: spec}, columns, [{key: v} for v in keys], now=earliest)
        online.index = pd.Index(keys)
    for day, rows in compare.items():
        skipped = int(newer[day].sum())
        if rows.empty:
            reports[day] = SkewReport(skipped, 0, skipped, 0, [])
            continue
        report = _compare(spec, rows, online.loc[rows[key].tolist()].reset_index(drop=True),
                          runtime.offline.partition_timestamp(day))
        reports[day] = SkewReport(report.sampled + skipped, report.compared, report.superseded + skipped,
                                  report.mismatches, report.examples)
    return reports


def _compare(spec: FeatureViewSpec, rows: pd.DataFrame, online: pd.DataFrame, ts: pd.Timestamp) -> SkewReport:
    key = spec.entity.join_key
    stamps = pd.to_datetime(online[event_timestamp_column(spec.feature_names[0])], utc=True)
    superseded = (stamps > ts).to_numpy()
    compared = ~superseded
    mismatch = compared & (stamps.isna() | (stamps < ts)).to_numpy()
    for f in spec.fields:
        want, got = rows[f.name], online[f.name]
        if f.dtype in ("float32", "float64"):
            a, b = pd.to_numeric(want, errors="coerce").to_numpy(float), pd.to_numeric(got, errors="coerce").to_numpy(float)
            differ = ~(np.isclose(a, b, rtol=1e-6, equal_nan=True))
        else:
            differ = np.array([not _same(x, y) for x, y in zip(want, got)], dtype=bool)
        mismatch |= compared & (stamps == ts).to_numpy() & differ
    examples = [{key: int(rows[key].iloc[i]) if spec.entity.dtype == "int64" else rows[key].iloc[i],
                 "offline": {f: _plain(rows[f].iloc[i]) for f in spec.feature_names},
                 "online": {f: _plain(online[f].iloc[i]) for f in spec.feature_names},
                 "online_timestamp": str(stamps.iloc[i])} for i in np.flatnonzero(mismatch)[:5]]
    return SkewReport(len(rows), int(compared.sum()), int(superseded.sum()), int(mismatch.sum()), examples)


class RunSamples:
    """The skew samples of a range run's partitions, taken as each is written, and per partition the sampled
    entities that a later partition of the run has a row for (`skew_reports`' `superseded`)."""

    def __init__(self, key: str):
        self.key = key
        self.samples: dict[date, pd.DataFrame] = {}
        self.superseded: dict[date, set] = {}
        self._open: dict[object, list[date]] = {}  # sampled entity -> the days it was sampled, no later row seen yet

    def add(self, day: date, rows: pd.DataFrame, sample: int = SAMPLE, seed: int = 0) -> None:
        """Partition `day`'s rows, written after every partition added before."""
        if self._open:
            for entity in _among(rows[self.key], list(self._open)):
                for earlier in self._open.pop(entity):
                    self.superseded.setdefault(earlier, set()).add(entity)
        self.samples[day] = sampled = sample_rows(rows, sample, seed)
        for entity in sampled[self.key].tolist():
            self._open.setdefault(entity, []).append(day)


def _among(keys: pd.Series, entities: list) -> list:
    """Those of `entities` that `keys` holds. A partition's integer keys in ascending order (as computed) are
    searched, not hashed: a few hundred lookups instead of a pass over the partition."""
    values = keys.to_numpy()
    if values.dtype.kind in "iu" and len(values) and bool(np.all(values[1:] > values[:-1])):
        wanted = np.array(entities, dtype=values.dtype)
        at = np.minimum(np.searchsorted(values, wanted), len(values) - 1)
        return wanted[values[at] == wanted].tolist()
    return keys[keys.isin(entities)].tolist()


def sample_rows(offline: pd.DataFrame, sample: int = SAMPLE, seed: int = 0) -> pd.DataFrame:
    """The rows of a partition the skew check compares (seeded, in the partition's order); a sample passed back in is
    compared whole. numpy's sampler draws `sample` positions (pandas' `sample` shuffled every row: ~1 ms a partition,
    twice per partition of a range run)."""
    rows = np.random.default_rng(seed).choice(len(offline), min(sample, len(offline)), replace=False)
    return offline.take(np.sort(rows)).reset_index(drop=True)


def _same(x, y) -> bool:
    if pd.isna(x) or pd.isna(y):  # pd.NA never compares equal, it propagates
        return bool(pd.isna(x) and pd.isna(y))
    return bool(x == y)


def _plain(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value



