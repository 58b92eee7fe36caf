"""Asset checks of the feature views: data-time freshness (run every minute by a schedule), the partition-aware
SLA, and the evaluations of the per-partition skew and drift checks, which each view's asset reports with
its materializations (`defs/feature_views.py`).

Dagster's FreshnessPolicy (set on each view's asset) looks only at run times and shows only on
the asset page in open-source Dagster; these checks measure the data users are served and, being
asset checks, colour the view's node in the asset graph.
"""

import warnings
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from feature_platform.compute.drift import Distribution, distribution_psi
from feature_platform.compute.partition_stats import SortedValues
from feature_platform.defs.resources import FeaturePlatformResource
from feature_platform.freshness import FRESH, WARN, view_freshness
from feature_platform.skew import skew_report
from feature_platform.spec import FeatureViewSpec

DATA_FRESHNESS_CHECK = "data_freshness"
SKEW_CHECK = "online_offline_skew"


def build_freshness_check(spec: FeatureViewSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=spec.name,
        name=DATA_FRESHNESS_CHECK,
        description=f"Newest feature timestamp offline and online is younger than {spec.freshness_sla} "
        f"(warn after {spec.warn_window}).",
    )
    def _data_freshness(platform: FeaturePlatformResource) -> dg.AssetCheckResult:
        f = view_freshness(platform.runtime(), spec)
        metadata = {
            "status": f.status,
            "sla_hours": round(f.sla.total_seconds() / 3600, 4),
            "newest_offline": str(f.newest_offline),
            "newest_online": str(f.newest_online),
            "latest_partition": f.latest_partition or "",
        }
        if f.age is not None:
            metadata["age_hours"] = round(f.age.total_seconds() / 3600, 4)
        return dg.AssetCheckResult(
            passed=f.status == FRESH,
            severity=dg.AssetCheckSeverity.WARN if f.status == WARN else dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
            description=f"{spec.name} is {f.status}" + (f" (age {f.age})" if f.age is not None else ""),
        )

    return _data_freshness


def build_freshness_schedule(checks: list[dg.AssetChecksDefinition]) -> dg.ScheduleDefinition:
    job = dg.define_asset_job(
        "freshness_checks_job",
        selection=dg.AssetSelection.checks(*checks),
        description="Evaluates the data-time freshness check of every feature view.",
    )
    return dg.ScheduleDefinition(job=job, cron_schedule="* * * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
                                 name="freshness_checks_every_minute")


def skew_evaluation(runtime, spec: FeatureViewSpec, day: date, rows=None) -> dict:
    """The skew check's result for partition `day` (`rows`: its offline rows, when already in memory)."""
    return skew_result(spec, skew_report(runtime, spec, day, offline=rows))


def skew_result(spec: FeatureViewSpec, report) -> dict:
    """A `SkewReport` as the skew check's result: skipped (a warning saying why) when nothing was compared, i.e.
    the partition has no rows, or every sampled entity already has a newer value online (a range run's earlier
    days: the later partitions' checks compare those values)."""
    metadata = {"sampled": report.sampled, "compared": report.compared, "superseded_by_newer": report.superseded}
    if report.sampled == 0:
        return skipped("the partition has no rows", metadata)
    if report.compared == 0:
        return skipped(f"all {report.superseded} sampled entities have a newer value online (from a later "
                       "partition, whose check compares it): nothing left to compare", metadata)
    return {
        "passed": report.mismatch_rate <= spec.skew_threshold,
        "metadata": {**metadata, "mismatches": report.mismatches, "mismatch_rate": report.mismatch_rate,
                     "examples": dg.MetadataValue.json(report.examples)},
    }


def skipped(reason: str, metadata: dict) -> dict:
    """The result of a check that had nothing to compare: a warning saying why, never a pass (a check that compared
    0 rows proves nothing, and green would say it did)."""
    return {"passed": False, "severity": dg.AssetCheckSeverity.WARN, "description": f"skipped: {reason}",
            "metadata": {**metadata, "skipped": True, "skipped_reason": reason}}


DRIFT_CHECK = "feature_drift"
PSI_WARN = 0.2


BASELINE = timedelta(days=7)  # drift compares a partition with the same weekday a week before


@dataclass
class DriftPartition:
    """A partition as drift compares it: its row count and each feature's `Distribution` (prepared once, as a range
    run compares each partition twice: with its baseline, then as the baseline of the partition a week later)."""

    rows: int
    features: dict[str, Distribution]


def drift_partition(spec: FeatureViewSpec, rows, sorted_values: SortedValues | None = None) -> DriftPartition:
    """`rows` as drift compares them; `sorted_values`: their `SortedValues`, where the caller has them."""
    return DriftPartition(len(rows), {f: Distribution(rows[f], sorted_values.of(f) if sorted_values else None)
                                      for f in spec.feature_names})


def drift_evaluation(spec: FeatureViewSpec, day: date, current, previous) -> dict:
    """The drift check's result for partition `day` from its rows and the baseline partition's (each a frame or its
    `drift_partition`): skipped when no feature could be compared (no baseline rows, no rows, or no value on one
    side)."""
    current, previous = (p if isinstance(p, DriftPartition) else drift_partition(spec, p) for p in (current, previous))
    scores = {f: distribution_psi(previous.features[f], current.features[f]) for f in spec.feature_names}
    compared = {f: v for f, v in scores.items() if v is not None}
    baseline = (day - BASELINE).isoformat()
    context = {"baseline_partition": baseline, "baseline_rows": previous.rows, "rows": current.rows}
    if not compared:
        return skipped(f"no baseline: partition {baseline} has no rows" if previous.rows == 0 else
                       f"partition {day.isoformat()} has no rows" if current.rows == 0 else
                       "no feature has a value in both partitions", context)
    shifted = sorted(f for f, v in compared.items() if v > PSI_WARN)
    return {
        "passed": not shifted,
        "severity": dg.AssetCheckSeverity.WARN,
        "metadata": {**{f"psi.{f}": v for f, v in compared.items()}, "shifted": ", ".join(shifted) or "none",
                     "not_compared": ", ".join(sorted(set(scores) - set(compared))) or "none", **context},
    }


def build_upstream_freshness_check(asset_key: dg.AssetKey, views: list[FeatureViewSpec]) -> dg.AssetChecksDefinition:
    """A downstream asset (a training set) shows its feature views' staleness on its own node."""

    @dg.asset_check(asset=asset_key, name="upstream_freshness",
                    description=f"The feature views it reads ({', '.join(v.name for v in views)}) are fresh.")
    def _upstream(platform: FeaturePlatformResource) -> dg.AssetCheckResult:
        states = {v.name: view_freshness(platform.runtime(), v) for v in views}
        worst = [n for n, f in states.items() if f.status != FRESH]
        only_warn = all(states[n].status == WARN for n in worst)
        return dg.AssetCheckResult(
            passed=not worst,
            severity=dg.AssetCheckSeverity.WARN if only_warn else dg.AssetCheckSeverity.ERROR,
            metadata={n: f.status for n, f in states.items()},
            description="upstream fresh" if not worst else f"stale or missing upstream: {', '.join(worst)}",
        )

    return _upstream


def build_partition_freshness(daily_views: list[dg.AssetsDefinition]) -> tuple[list, dg.SensorDefinition]:
    """Partition-aware SLA: yesterday's partition must exist by 02:00 UTC (26 h after the day began).

    Unlike the asset-level FreshnessPolicy, a backfill of an old partition does not make this pass.
    Dagster marks these builders superseded by FreshnessPolicy, which cannot express this in OSS.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checks = dg.build_time_partition_freshness_checks(assets=daily_views, deadline_cron="0 2 * * *",
                                                          timezone="UTC", severity=dg.AssetCheckSeverity.ERROR)
        sensor = dg.build_sensor_for_freshness_checks(freshness_checks=checks, name="partition_freshness_sensor",
                                                      default_status=dg.DefaultSensorStatus.RUNNING)
    return list(checks), sensor
