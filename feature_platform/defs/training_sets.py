"""Training set -> Dagster assets: `<name>_labels` and `<name>`, built by one factory per spec.

The training set depends on its labels and, for lineage, on every feature view its feature service
reads; it is written as Parquet by the dataset IO manager, so `Definitions.load_asset_value` and
`FeaturePlatform.load_training_asset` both load it.
"""

import dagster as dg
import pandas as pd

from feature_platform.defs.automation import training_set_condition
from feature_platform.defs.resources import FeaturePlatformResource
from feature_platform.spec import TrainingSetSpec
from feature_platform.training import label_frame, resolve_features, training_set, training_set_metadata


def build_training_set_assets(spec: TrainingSetSpec) -> list[dg.AssetsDefinition]:
    views = list(dict.fromkeys(c.view for c in resolve_features(spec.feature_service)))
    labels_key = dg.AssetKey(f"{spec.name}_labels")
    raw = dg.AssetKey("raw_sessions")
    automation = training_set_condition(spec.refresh_cron, [raw]) if spec.refresh_cron else None

    @dg.asset(
        key=labels_key,
        group_name="training_sets",
        deps=[raw, *(dg.AssetKey(v) for v in views)],
        automation_condition=automation,
        io_manager_key="dataset_io_manager",
        kinds={"pandas", "parquet"},
        owners=[f"team:{spec.owner}"],
        code_version=spec.fingerprint(),
        description=f"Labels of {spec.name}: entity keys, event_timestamp and {spec.label_column}.",
    )
    def _labels(context: dg.AssetExecutionContext, platform: FeaturePlatformResource) -> pd.DataFrame:
        labels = label_frame(platform.runtime(), spec)
        context.add_output_metadata({"dagster/row_count": len(labels)})
        return labels

    @dg.asset(
        name=spec.name,
        group_name="training_sets",
        ins={"labels": dg.AssetIn(labels_key)},
        deps=[dg.AssetKey(v) for v in views],
        io_manager_key="dataset_io_manager",
        kinds={"pandas", "parquet", "duckdb"},
        owners=[f"team:{spec.owner}"],
        code_version=spec.fingerprint(),
        tags={"version": str(spec.version)},
        automation_condition=automation,
        description=spec.description,
        metadata={"version": spec.version, "feature_service": spec.feature_service, "label_column": spec.label_column},
    )
    def _training_set(context: dg.AssetExecutionContext, platform: FeaturePlatformResource,
                      labels: pd.DataFrame) -> pd.DataFrame:
        runtime = platform.runtime()
        # The join runs on the deployment's engine: Spark's when the views are computed in Spark.
        engine = "spark" if runtime.settings.engine == "spark" else "duckdb"
        frame = training_set(runtime, labels, spec.feature_service, engine=engine)
        info = training_set_metadata(runtime, spec, frame)
        for view, about in info["feature_views"].items():
            if "deprecated" in about:
                context.log.warning("training set %s reads deprecated feature view %s: %s", spec.name, view,
                                    about["deprecated"])
        context.add_output_metadata({
            "dagster/row_count": info["rows"],
            "label_balance": dg.MetadataValue.json(info["label_balance"]),
            "null_rate": dg.MetadataValue.json(info["null_rate"]),
            "feature_views": dg.MetadataValue.json(info["feature_views"]),
            "feature_service": spec.feature_service,
            "version": spec.version,
        })
        return frame

    return [_labels, _training_set]
