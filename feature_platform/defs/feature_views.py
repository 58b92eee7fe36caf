"""Feature view -> Dagster asset: one daily-partitioned asset per spec, built by one factory.

Each partition run computes the view as of the end of its day, validates it with Pandera (a
blocking asset check), writes the offline table and syncs the online store. Backfills run one
partition per run (Dagster's default for partitioned assets), so every partition gets its own
metadata and check result, and memory is bounded by one partition's window.
"""


import warnings
from datetime import date

import dagster as dg

from feature_platform.config import Settings
from feature_platform.defs.metadata import materialization_metadata, view_asset_args
from feature_platform.defs.partitions import daily_partitions
from feature_platform.defs.raw_sessions import raw_source_key
from feature_platform.defs.resources import FeaturePlatformResource
from feature_platform.errors import ValidationFailedError
from feature_platform.pipeline import materialize_partition
from feature_platform.spec import FeatureViewSpec

PANDERA_CHECK = "pandera_schema"


def build_feature_view_asset(spec: FeatureViewSpec, settings: Settings) -> dg.AssetsDefinition:
    with warnings.catch_warnings():
        # Partitioned check specs and nonexistent-upstream mapping are preview/beta APIs we rely on knowingly.
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _build(spec, settings)


def _build(spec: FeatureViewSpec, settings: Settings) -> dg.AssetsDefinition:
    partitions = daily_partitions(settings)
    lookback = spec.aggregation.window.days  # the window, plus the previous day for closing rows

    @dg.asset(
        partitions_def=partitions,
        deps=[
            dg.AssetDep(
                raw_source_key(spec.aggregation.source),
                partition_mapping=dg.TimeWindowPartitionMapping(
                    start_offset=-lookback, allow_nonexistent_upstream_partitions=True
                ),
            )
        ],
        check_specs=[
            dg.AssetCheckSpec(
                PANDERA_CHECK,
                asset=spec.name,
                blocking=True,
                partitions_def=partitions,
                description=f"Pandera schema of {spec.name}: dtypes, constraints, unique (entity, timestamp).",
            )
        ],
        **view_asset_args(spec, settings, window=str(spec.aggregation.window)),
    )
    def _feature_view(context: dg.AssetExecutionContext, platform: FeaturePlatformResource):
        day = date.fromisoformat(context.partition_key)
        try:
            result = materialize_partition(platform.runtime(), spec, day)
        except ValidationFailedError as exc:
            yield dg.AssetCheckResult(
                check_name=PANDERA_CHECK,
                passed=False,
                metadata={
                    "failures": len(exc.failures),
                    "failure_cases": dg.MetadataValue.md(exc.failures.head(20).to_markdown(index=False)),
                    "quarantine": dg.MetadataValue.path(exc.quarantine_path),
                },
            )
            raise dg.Failure(description=str(exc), metadata={"quarantine": dg.MetadataValue.path(exc.quarantine_path)}) from exc
        context.log.info(
            "%s %s: %d rows (%d closing), %d written online in %.2fs",
            spec.name, day, result.rows, result.closing_rows, result.rows_online, result.duration_sec,
        )
        yield dg.MaterializeResult(
            metadata=materialization_metadata(spec, result),
            check_results=[dg.AssetCheckResult(check_name=PANDERA_CHECK, passed=True, metadata={"rows": result.rows})],
        )

    return _feature_view
