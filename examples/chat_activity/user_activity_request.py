"""user_activity_request: request-time features over user_activity and the prompt being served.

Computed by `derive` when a training set or an online read asks for them, never stored: the same
function sees the same columns (serving dtypes) in both paths.
"""

import pandas as pd

from feature_platform.spec import Field, RequestFeatureViewSpec


def derive(df: pd.DataFrame) -> pd.DataFrame:
    messages = df["messages_sent_7d"].astype("float64")  # a user with no row: null (NaN)
    tokens = df["total_tokens_7d"].astype("float64")
    per_message = (tokens / messages).where(messages > 0)  # no messages in 7 days: null, never inf
    prompt = df["prompt_tokens"].astype("float64")
    return pd.DataFrame({
        "tokens_per_message": per_message,
        # How long this prompt is against the user's typical message; null without history.
        "prompt_vs_typical_message": (prompt / per_message).where(per_message > 0),
    })


SPEC = RequestFeatureViewSpec(
    name="user_activity_request",
    description="Ratios over the user's last 7 days and the prompt of the current request.",
    inputs=("user_activity:total_tokens_7d", "user_activity:messages_sent_7d"),
    request_fields=(Field("prompt_tokens", "int64", "Tokens of the prompt being served (request data)"),),
    features=(
        Field("tokens_per_message", "float64", "total_tokens_7d / messages_sent_7d; null when no messages", nullable=True),
        Field("prompt_vs_typical_message", "float64", "prompt_tokens / tokens_per_message", nullable=True),
    ),
    function=derive,
    owner="platform",
)
