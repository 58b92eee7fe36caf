from datetime import timedelta

from feature_platform.spec import Agg, FeatureViewSpec, Field, WindowAggregation

from .entities import CUSTOMER

SPEC = FeatureViewSpec(
    name="customer_orders_30d",
    description="A customer's orders over 30 days.",
    entity=CUSTOMER,
    fields=(
        Field("orders_30d", "int64", ge=0),
        Field("distinct_orders_30d", "int64", ge=0),
        Field("spend_30d", "float64", ge=0),
        Field("mean_order_30d", "float64", nullable=True),
        Field("smallest_order_30d", "float64", nullable=True),
        Field("largest_order_30d", "float64", nullable=True),
        Field("items_30d", "int64", ge=0),
        Field("usual_payment", "string"),
    ),
    aggregation=WindowAggregation(
        source="orders",
        timestamp_column="ordered_at",
        window=timedelta(days=30),
        aggs=(
            Agg("orders_30d", "count", "order_id"),
            Agg("distinct_orders_30d", "count_distinct", "order_id"),
            Agg("spend_30d", "sum", "amount"),
            Agg("mean_order_30d", "mean", "amount"),
            Agg("smallest_order_30d", "min", "amount"),
            Agg("largest_order_30d", "max", "amount"),
            Agg("items_30d", "sum", "items"),
            Agg("usual_payment", "mode", "payment_method", empty="none"),
        ),
    ),
    ttl=timedelta(days=30),
    owner="shop",
    freshness_sla=timedelta(hours=26),
    version=1,
)
