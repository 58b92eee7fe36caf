"""user_realtime: what a user is doing right now, fed by the push source `user_realtime_events`."""

from datetime import timedelta

from chat_activity.entities import USER
from feature_platform.spec import FeatureViewSpec, Field

SPEC = FeatureViewSpec(
    name="user_realtime",
    description="The user's current session, updated from pushed events within seconds.",
    entity=USER,
    fields=(
        Field("current_session_messages", "int64", "Messages in the current session", ge=0),
        Field("current_session_tokens", "int64", "Tokens in the current session", ge=0),
        Field("last_active_minutes_ago", "float32", "Minutes since the user's last activity", ge=0),
    ),
    push_source="user_realtime_events",
    ttl=timedelta(hours=1),
    owner="platform",
    freshness_sla=timedelta(minutes=5),
    version=1,
)
