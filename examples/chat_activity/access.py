"""Who may read and push what through `feature-platform serve` (enforced when tokens are configured:
FEATURE_PLATFORM_SERVING_TOKENS_FILE maps each caller's token to its roles)."""

from feature_platform.spec import AccessSpec

CHURN_MODEL = AccessSpec(
    name="churn_model_reads",
    roles=("churn_model",),
    actions=("read",),
    feature_services=("churn_features",),
    description="The churn model's inference service reads its feature service, nothing else.",
)

EVENT_PRODUCERS = AccessSpec(
    name="realtime_event_push",
    roles=("event_producer",),
    actions=("push",),
    feature_views=("user_realtime",),
    description="The chat backend pushes user_realtime_events.",
)

FEATURE_READERS = AccessSpec(
    name="user_feature_reads",
    roles=("feature_reader",),
    actions=("read",),
    feature_views=("user_activity", "user_activity_v3", "user_realtime"),
    description="Services reading user features by view (request-time features need their input views).",
)
