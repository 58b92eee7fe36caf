"""user_activity: 7-day chat activity per user, computed daily from the sessions log.

Version 2 (as in the seeds), the family's first version here, so it keeps the bare name. Version 3 lives
beside it in `user_activity_v3.py`.
"""

from datetime import timedelta

from chat_activity.entities import USER
from feature_platform.spec import Agg, FeatureViewSpec, Field, WindowAggregation

__all__ = ["SPEC", "USER"]

SPEC = FeatureViewSpec(
    name="user_activity",
    description="Each user's chat activity over the 7 UTC days ending with the partition day.",
    entity=USER,
    fields=(
        Field("sessions_7d", "int64", "Distinct sessions in the window", ge=0),
        Field("avg_session_duration_sec", "float32", "Mean session duration (null when no session)", ge=0, nullable=True),
        Field("messages_sent_7d", "int64", "Messages sent in the window", ge=0),
        Field("tools_used_7d", "int64", "Tool invocations in the window", ge=0),
        Field("preferred_model", "string", "Most used model; ties: alphabetically first; 'unknown' when idle"),
        Field("total_tokens_7d", "int64", "Tokens used in the window", ge=0),
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
        ),
    ),
    ttl=timedelta(days=7),
    owner="platform",
    freshness_sla=timedelta(hours=26),
    version=2,
)
