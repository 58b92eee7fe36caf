"""user_activity version 3: version 2's features plus `distinct_models_7d`, served beside version 2.

Adding a field is additive and could have been applied to version 2 in place; it is a version of its
own here to show a side-by-side migration: consumers of `user_activity` (the churn feature service and
training set) keep reading version 2 until they move to `user_activity_v3`, then version 2 is
deprecated and removed. The spec is complete on its own (not derived from version 2's), so deleting
version 2's file later leaves it intact; `feature-platform plan` shows what differs between the two.
"""

from datetime import timedelta

from chat_activity.entities import USER
from feature_platform.spec import Agg, FeatureViewSpec, Field, WindowAggregation

SPEC = FeatureViewSpec(
    name="user_activity_v3",
    family="user_activity",
    version=3,
    description="Each user's chat activity over the 7 UTC days ending with the partition day, "
    "with the number of distinct models used.",
    entity=USER,
    fields=(
        Field("sessions_7d", "int64", "Distinct sessions in the window", ge=0),
        Field("avg_session_duration_sec", "float32", "Mean session duration (null when no session)", ge=0, nullable=True),
        Field("messages_sent_7d", "int64", "Messages sent in the window", ge=0),
        Field("tools_used_7d", "int64", "Tool invocations in the window", ge=0),
        Field("preferred_model", "string", "Most used model; ties: alphabetically first; 'unknown' when idle"),
        Field("total_tokens_7d", "int64", "Tokens used in the window", ge=0),
        Field("distinct_models_7d", "int64", "Distinct models used in the window (0 when idle)", ge=0),
    ),
    aggregation=WindowAggregation(
        source="sessions",
        timestamp_column="event_timestamp",
        window=timedelta(days=7),
        aggs=(
            Agg("sessions_7d", "count_distinct", "session_id"),
            Agg("avg_session_duration_sec", "mean", "duration_sec"),
            Agg("messages_sent_7d", "sum", "message_count"),
            Agg("tools_used_7d", "sum", "tool_invocations"),
            Agg("preferred_model", "mode", "model", empty="unknown"),
            Agg("total_tokens_7d", "sum", "tokens"),
            Agg("distinct_models_7d", "count_distinct", "model"),
        ),
    ),
    ttl=timedelta(days=7),
    owner="platform",
    freshness_sla=timedelta(hours=26),
)
