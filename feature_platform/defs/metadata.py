"""Dagster metadata derived from specs and partition results."""

from __future__ import annotations

import dagster as dg

from feature_platform.backends import build_backends
from feature_platform.derive.pandera_schema import constraint_text
from feature_platform.pipeline import PartitionResult
from feature_platform.spec import FeatureViewSpec


def column_schema(spec: FeatureViewSpec) -> dg.TableSchema:
    key = spec.entity.join_key
    return dg.TableSchema(
        columns=[
            dg.TableColumn(key, spec.entity.dtype, description=f"entity {spec.entity.name}",
                           constraints=dg.TableColumnConstraints(nullable=False)),
            *(
                dg.TableColumn(
                    f.name, f.dtype, description=f.description,
                    constraints=dg.TableColumnConstraints(nullable=f.nullable, other=[c for c in [constraint_text(f)] if c]),
                )
                for f in spec.fields
            ),
            dg.TableColumn("event_timestamp", "timestamp", description="feature timestamp: end of the partition day (UTC)"),
            dg.TableColumn("created_timestamp", "timestamp", description="when the row was computed"),
        ]
    )


def view_asset_args(spec: FeatureViewSpec, settings, **extra_metadata) -> dict:
    """The @asset arguments every feature view derives from its spec, batch or pushed alike."""
    backends = build_backends(settings)
    return dict(
        name=spec.name,
        group_name="feature_views",
        code_version=spec.fingerprint(),
        kinds={"pandas", "feast", backends.offline_kind, backends.online_kind},
        owners=[f"team:{spec.owner}"],
        tags=spec.all_tags,
        description=(f"DEPRECATED ({spec.deprecated}). " if spec.deprecated else "") + spec.description,
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=spec.freshness_sla, warn_window=spec.warn_window),
        metadata={
            "dagster/column_schema": column_schema(spec),
            "entity": f"{spec.entity.name} ({spec.entity.join_key})",
            "ttl": str(spec.ttl),
            "freshness_sla": str(spec.freshness_sla),
            "version": spec.version,
            "family": spec.family_name,
            **({"deprecated": spec.deprecated} if spec.deprecated else {}),
            **extra_metadata,
        },
    )


def materialization_metadata(spec: FeatureViewSpec, result: PartitionResult) -> dict:
    metadata: dict = {
        "dagster/row_count": result.rows,
        "dagster/column_schema": column_schema(spec),
        "closing_rows": result.closing_rows,
        "rows_written_online": result.rows_online,
        "rows_skipped_online_newer": result.rows - result.rows_online,
        "duration_sec": round(result.duration_sec, 3),
        "null_counts": dg.MetadataValue.json(result.stats["null_counts"]),
    }
    for feature, values in result.stats.items():
        if feature == "null_counts":
            continue
        for stat, value in values.items():
            if value is not None:
                metadata[f"{feature}.{stat}"] = float(value)
    return metadata


def range_metadata(results: list[PartitionResult]) -> dict:
    """The metadata a range run's partitions share: the run's totals (each partition has its own figures too)."""
    return {
        "partitions_in_run": len(results),
        "first_partition": results[0].day.isoformat() if results else "",
        "last_partition": results[-1].day.isoformat() if results else "",
        "rows_in_run": sum(r.rows for r in results),
        "closing_rows_in_run": sum(r.closing_rows for r in results),
        "rows_written_online_in_run": sum(r.rows_online for r in results),
        "run_duration_sec": round(sum(r.duration_sec for r in results), 3),
    }
