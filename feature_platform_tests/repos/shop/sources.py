from datetime import date

from feature_platform.spec import Field, SourceSpec

ORDERS = SourceSpec(
    name="orders",
    description="One row per order, written by the shop's backend.",
    table="shop.orders",
    connection="SHOP_ORDERS_DSN",
    timestamp_column="ordered_at",
    row_id=("order_id", "customer_id"),
    columns=(
        Field("order_id", "string"),
        Field("customer_id", "string"),
        Field("amount", "float64", ge=0),
        Field("items", "int64", ge=1),
        Field("payment_method", "string", isin=("card", "paypal", "voucher")),
    ),
    start=date(2026, 3, 1),
)

PAGE_VIEWS = SourceSpec(
    name="page_views",
    description="Page views, one Parquet directory per day (date=YYYY-MM-DD/).",
    path="{home}/page_views",  # in the platform's home: each test writes its own
    timestamp_column="viewed_at",
    columns=(
        Field("visitor_id", "int64"),
        Field("page", "string"),
        Field("dwell_sec", "float64", ge=0, nullable=True),
    ),
)
