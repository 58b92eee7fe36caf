"""Data-time freshness checks, one per feature view, run every minute by a schedule.

Dagster's FreshnessPolicy (set on each view's asset) looks only at run times and shows only on
the asset page in open-source Dagster; these checks measure the data users are served and, being
asset checks, colour the view's node in the asset graph.
"""

import dagster as dg

from feature_platform.defs.resources import FeaturePlatformResource
from feature_platform.freshness import FRESH, WARN, view_freshness
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


def build_skew_check(spec: FeatureViewSpec, partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    """After each partition: sampled online values must equal the offline table (skew guard)."""
    from datetime import date

    from feature_platform.skew import skew_report

    @dg.asset_check(
        asset=spec.name,
        name=SKEW_CHECK,
        partitions_def=partitions,
        description=f"Sampled online values equal the offline partition (fails above {spec.skew_threshold:.2%} mismatches).",
    )
    def _skew(context: dg.AssetCheckExecutionContext, platform: FeaturePlatformResource) -> dg.AssetCheckResult:
        report = skew_report(platform.runtime(), spec, date.fromisoformat(context.partition_key))
        return dg.AssetCheckResult(
            passed=report.mismatch_rate <= spec.skew_threshold,
            metadata={
                "sampled": report.sampled, "compared": report.compared, "superseded_by_newer": report.superseded,
                "mismatches": report.mismatches, "mismatch_rate": report.mismatch_rate,
                "examples": dg.MetadataValue.json(report.examples),
            },
        )

    return _skew
