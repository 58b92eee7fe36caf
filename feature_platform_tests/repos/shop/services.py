from feature_platform.spec import FeatureServiceSpec

SHOP_FEATURES = FeatureServiceSpec(
    name="shop_features",
    features=("customer_orders_30d:spend_30d", "customer_orders_30d:orders_30d", "customer_orders_30d:usual_payment"),
)
