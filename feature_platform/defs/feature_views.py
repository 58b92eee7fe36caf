"""Feature view -> Dagster asset: one daily-partitioned asset per spec, built by one factory.

Each run computes the view as of the end of each of its partition days, validates every day with
Pandera (a blocking asset check), writes the offline partitions and syncs the online store; the
online/offline skew and drift checks are evaluated by the same op. A single
partition is one run; a backfill runs `BackfillPolicy.multi_run` ranges of up to
FEATURE_PLATFORM_BACKFILL_DAYS_PER_RUN days, computed in one vectorized pass a chunk of days at a
time (so memory is bounded by a chunk, not by the range). Each day still gets its own
materialization, metadata and check result. A run that fails records exactly the days it kept in both
stores (`materialize_range`), and records them before evaluating their checks.
"""


import warnings
from datetime import date

import dagster as dg

from feature_platform.compute.partition_stats import SortedValues
from feature_platform.config import Settings
from feature_platform.defs.automation import daily_view_condition
from feature_platform.defs.freshness_checks import (
    BASELINE,
    DRIFT_CHECK,
    PSI_WARN,
    SKEW_CHECK,
    drift_evaluation,
    drift_partition,
    skew_evaluation,
    skew_result,
)
from feature_platform.defs.metadata import materialization_metadata, range_metadata, view_asset_args
from feature_platform.defs.partitions import daily_partitions
from feature_platform.defs.raw_sources import raw_source_key
from feature_platform.defs.resources import FeaturePlatformResource
from feature_platform.errors import ValidationFailedError
from feature_platform.pipeline import PartitionResult, materialize_range, validate
from feature_platform.skew import RunSamples, skew_reports
from feature_platform.spec import FeatureViewSpec
from feature_platform.util.phases import phase
from feature_platform.vocabulary import CREATED_TIMESTAMP

PANDERA_CHECK = "pandera_schema"


def build_feature_view_asset(spec: FeatureViewSpec, settings: Settings) -> dg.AssetsDefinition:
    with warnings.catch_warnings():
        # Partitioned check specs, backfill policies and nonexistent-upstream mapping are preview/beta APIs
        # we rely on knowingly.
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _build(spec, settings)


def _build(spec: FeatureViewSpec, settings: Settings) -> dg.AssetsDefinition:
    partitions = daily_partitions(settings)
    lookback = spec.aggregation.window.days  # the window, plus the previous day for closing rows
    args = view_asset_args(spec, settings, window=str(spec.aggregation.window))
    key = dg.AssetKey(args.pop("name"))
    asset_spec = dg.AssetSpec(
        key,
        partitions_def=partitions,
        deps=[
            dg.AssetDep(
                raw_source_key(spec.aggregation.source),
                partition_mapping=dg.TimeWindowPartitionMapping(
                    start_offset=-lookback, allow_nonexistent_upstream_partitions=True
                ),
            )
        ],
        skippable=True,  # a failed range run reports its written partitions as AssetMaterialization events
        automation_condition=daily_view_condition(),  # yesterday, once its window's raw days are in (automation.py)
        **args,
    )

    # A multi-asset because a range run reports each partition's check results as events; `can_subset`
    # makes its outputs optional, so a failed range run can report just the partitions it wrote, and lets
    # a check run alone (e.g. "Execute" on the check in the UI) against the stored partition.
    @dg.multi_asset(
        name=spec.name,
        specs=[asset_spec],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.backfill_days_per_run),
        can_subset=True,
        check_specs=[
            dg.AssetCheckSpec(
                PANDERA_CHECK, asset=key, blocking=True, partitions_def=partitions,
                description=f"Pandera schema of {spec.name}: dtypes, constraints, unique (entity, timestamp).",
            ),
            dg.AssetCheckSpec(
                SKEW_CHECK, asset=key, partitions_def=partitions,
                description=f"Sampled online values equal the offline partition (fails above {spec.skew_threshold:.2%} "
                            "mismatches); entities with a newer value online count as superseded.",
            ),
            dg.AssetCheckSpec(
                DRIFT_CHECK, asset=key, partitions_def=partitions,
                description=f"PSI of each feature against the partition {BASELINE.days} days earlier; warns above {PSI_WARN}.",
            ),
        ],
    )
    def _feature_view(context: dg.AssetExecutionContext, platform: FeaturePlatformResource):
        days = [date.fromisoformat(k) for k in context.partition_keys]
        report = _Report(context, spec, key, platform.runtime())
        if key not in context.selected_asset_keys:  # only checks were selected: evaluate the stored partitions
            yield from report.stored(days)
            return

        # A materialization registers its view before anything is written (refusing a breaking change in place).
        report.runtime.apply()

        def progress(done: int, total: int, day: date) -> None:
            if done == total or done % 30 == 0:
                context.log.info("%s: %d/%d partitions computed and written offline (%s)", spec.name, done, total, day)

        try:
            results = materialize_range(report.runtime, spec, days[0], days[-1], progress=progress,
                                        on_written=report.written)
        except ValidationFailedError as exc:
            yield from report.partitions(exc.completed, complete=False)
            if PANDERA_CHECK in report.selected:
                yield report.check(PANDERA_CHECK, date.fromisoformat(exc.partition), passed=False, metadata={
                    "failures": len(exc.failures),
                    "failure_cases": dg.MetadataValue.md(exc.failures.head(20).to_markdown(index=False)),
                    "quarantine": dg.MetadataValue.path(exc.quarantine_path),
                })
            raise dg.Failure(description="\n".join([str(exc), *getattr(exc, "__notes__", ())]),  # + the days kept
                             metadata={"quarantine": dg.MetadataValue.path(exc.quarantine_path)}) from exc
        except Exception as exc:
            # Any other failure: the days kept in both stores before it (`completed`) are recorded too.
            try:
                yield from report.partitions(getattr(exc, "completed", []), complete=False)
            except Exception as checks:  # noqa: BLE001 - the run's own error is the one to raise
                context.log.error("%s: checks of the partitions kept before the failure: %s", spec.name, checks)
            raise
        yield from report.partitions(results)

    return _feature_view


class _Report:
    """What one run of a view's asset reports: per partition, its materialization and its selected checks.

    A single-partition run yields a `MaterializeResult` and `AssetCheckResult`s; a range run one
    `MaterializeResult` for the range and an `AssetCheckEvaluation` per partition and check.
    Drift is evaluated for every day from the rows in memory (the baseline a week before from memory or the
    offline table); skew for every day once the run's online write is done, from the sample of each day's
    rows taken when it was written, read back online at once; an entity that a later day of the run wrote again
    counts as superseded without being read (newest-wins keeps that newer value online).
    """

    def __init__(self, context, spec: FeatureViewSpec, key: dg.AssetKey, runtime):
        self.context, self.spec, self.key, self.runtime = context, spec, key, runtime
        self.single = context.has_partition_key
        self.selected = {k.name for k in context.selected_asset_check_keys}
        self.recent: dict[date, object] = {}  # the last week's `drift_partition`s: drift baselines
        self.drift: dict[date, dict] = {}
        self.skew = RunSamples(spec.entity.join_key)  # each day's skew sample, and what later days superseded

    def check(self, name: str, day: date, **result):
        if self.single:
            return dg.AssetCheckResult(asset_key=self.key, check_name=name, **result)
        return dg.AssetCheckEvaluation(asset_key=self.key, check_name=name, partition=day.isoformat(), **result)

    def written(self, day: date, rows, sorted_values: SortedValues | None = None) -> None:
        if DRIFT_CHECK in self.selected:
            baseline = self.recent.pop(day - BASELINE, None)
            if baseline is None:
                baseline = self.runtime.offline.read(self.spec, day - BASELINE, day - BASELINE)
            current = drift_partition(self.spec, rows, sorted_values)  # values copied (a view keeps the chunk alive)
            self.drift[day] = drift_evaluation(self.spec, day, current, baseline)
            for distribution in current.features.values():
                distribution.keep_as_baseline()
            self.recent[day] = current  # the baseline of day + 7 (popped then, so at most a week is kept)
        if SKEW_CHECK in self.selected:
            self.skew.add(day, rows)

    def partitions(self, results: list[PartitionResult], complete: bool = True):
        """Materializations and check results of the written partitions.

        A complete range run yields one `MaterializeResult` for the range, as Dagster's own range runs do:
        the asset's output, so downstream steps (the partition-freshness check) run, with metadata shared by
        its partitions (totals and a per-partition table). A failed one yields a materialization event per
        kept partition instead (an output would cover the unwritten days too). The materializations come
        first, so a check that fails to evaluate (the skew check reads the online store) cannot lose them.
        """
        # The materializations first: written partitions are recorded even if a check below cannot be evaluated
        # (the skew check reads the online store back).
        if self.single:
            if results:
                yield dg.MaterializeResult(asset_key=self.key, metadata=materialization_metadata(self.spec, results[0]))
        elif complete:
            for result in results:  # each partition's own figures, as a one-partition run reports them
                self.context.add_asset_metadata(materialization_metadata(self.spec, result), asset_key=self.key,
                                                partition_key=result.day.isoformat())
            yield dg.MaterializeResult(asset_key=self.key, metadata=range_metadata(results))
        else:
            for result in results:
                yield dg.AssetMaterialization(asset_key=self.key, partition=result.day.isoformat(),
                                              metadata=materialization_metadata(self.spec, result))
        if results:  # one line per run: each log line is a stored Dagster event (per-day figures are in the metadata)
            self.context.log.info(
                "%s %s..%s: %d partitions, %d rows (%d closing), %d written online in %.2fs",
                self.spec.name, results[0].day, results[-1].day, len(results), sum(r.rows for r in results),
                sum(r.closing_rows for r in results), sum(r.rows_online for r in results),
                sum(r.duration_sec for r in results),
            )
        with phase("checks"):
            samples = self.skew.samples
            skew = skew_reports(self.runtime, self.spec, {r.day: samples[r.day] for r in results if r.day in samples},
                                superseded=self.skew.superseded)
        for result in results:
            day = result.day
            if PANDERA_CHECK in self.selected:
                yield self.check(PANDERA_CHECK, day, passed=True, metadata={"rows": result.rows})
            if day in self.drift:
                yield self.check(DRIFT_CHECK, day, **self.drift[day])
            if day in skew:
                yield self.check(SKEW_CHECK, day, **skew_result(self.spec, skew[day]))

    def stored(self, days: list[date]):
        """The selected checks of stored partitions, without materializing (a check run on its own)."""
        offline = self.runtime.offline
        for day in days:
            rows = offline.read(self.spec, day, day)
            if PANDERA_CHECK in self.selected:
                failures = validate(self.spec, rows.drop(columns=[CREATED_TIMESTAMP]))
                yield self.check(PANDERA_CHECK, day, passed=failures is None,
                                 metadata={"rows": len(rows), "failures": 0 if failures is None else len(failures)})
            if DRIFT_CHECK in self.selected:
                yield self.check(DRIFT_CHECK, day, **drift_evaluation(
                    self.spec, day, rows, offline.read(self.spec, day - BASELINE, day - BASELINE)))
            if SKEW_CHECK in self.selected:
                yield self.check(SKEW_CHECK, day, **skew_evaluation(self.runtime, self.spec, day, rows=rows))
