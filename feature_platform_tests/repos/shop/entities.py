from feature_platform.spec import Entity

CUSTOMER = Entity(name="customer", join_key="customer_id", dtype="string", description="A shop customer")
VISITOR = Entity(name="visitor", join_key="visitor_id", dtype="int64", description="A site visitor")
