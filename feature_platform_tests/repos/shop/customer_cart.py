from datetime import timedelta

from feature_platform.spec import FeatureViewSpec, Field

from .entities import CUSTOMER

SPEC = FeatureViewSpec(
    name="customer_cart",
    description="What is in a customer's cart right now, pushed by the shop.",
    entity=CUSTOMER,
    fields=(
        Field("cart_items", "int64", ge=0),
        Field("cart_value", "float64", ge=0),
    ),
    push_source="customer_cart_events",
    ttl=timedelta(hours=2),
    owner="shop",
    freshness_sla=timedelta(minutes=5),
    version=1,
)
