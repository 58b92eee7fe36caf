from datetime import timedelta

from feature_platform.spec import Agg, FeatureViewSpec, Field, WindowAggregation

from .entities import VISITOR

SPEC = FeatureViewSpec(
    name="page_activity_3d",
    description="A visitor's page views over 3 days.",
    entity=VISITOR,
    fields=(
        Field("views_3d", "int64", ge=0),
        Field("pages_3d", "int64", ge=0),
        Field("longest_dwell_3d", "float64", nullable=True),
        Field("favourite_page", "string"),
    ),
    aggregation=WindowAggregation(
        source="page_views",
        timestamp_column="viewed_at",
        window=timedelta(days=3),
        aggs=(
            Agg("views_3d", "count", "page"),
            Agg("pages_3d", "count_distinct", "page"),
            Agg("longest_dwell_3d", "max", "dwell_sec"),
            Agg("favourite_page", "mode", "page", empty="none"),
        ),
    ),
    ttl=timedelta(days=3),
    owner="web",
    freshness_sla=timedelta(hours=26),
    version=1,
)
