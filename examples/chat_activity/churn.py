"""The demo churn model's features (a feature service) and its training set."""

from feature_platform.spec import FeatureServiceSpec, TrainingSetSpec

CHURN_FEATURES = FeatureServiceSpec(
    name="churn_features",
    version=1,
    description="Features of the churn model: a user's last 7 days of chat activity.",
    features=(
        "user_activity:sessions_7d",
        "user_activity:avg_session_duration_sec",
        "user_activity:messages_sent_7d",
        "user_activity:tools_used_7d",
        "user_activity:preferred_model",
        "user_activity:total_tokens_7d",
    ),
)

CHURN_TRAINING_SET = TrainingSetSpec(
    name="churn_training_set",
    version=1,
    description="Active users sampled daily, labelled churned_7d when they send nothing the next week.",
    feature_service="churn_features",
    labels="chat_activity.labels:churn_labels",
    label_column="churned_7d",
    label_params={"view": "user_activity", "days": 21, "horizon_days": 7},
)
