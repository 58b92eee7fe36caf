"""Request-time features: one function, identical values in training sets and online reads."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chat_activity.user_activity_request import SPEC

import feature_platform as fp
from feature_platform.backends.feast_yaml import write_feature_store_yaml
from feature_platform.request_time import RequestFeatureError, compute
from feature_platform.spec import Field, RequestFeatureViewSpec, SpecError
from feature_platform_tests.helpers import (
    sessions_frame,
    settings_of,
    write_sessions,
)

REQUEST = ["user_activity_request:tokens_per_message", "user_activity_request:prompt_vs_typical_message"]
FEATURES = ["user_activity:messages_sent_7d", "user_activity:total_tokens_7d", *REQUEST]
AT = pd.Timestamp("2026-01-09T06:00:00Z")  # partition 2026-01-08 is knowable from 2026-01-09 00:00


@pytest.fixture(scope="module")
def platform(profile, tmp_path_factory):
    with settings_of(profile, tmp_path_factory.mktemp(profile)) as settings:
        yield _materialized(settings)


def _materialized(settings) -> fp.FeaturePlatform:
    write_sessions(settings.sessions_path, sessions_frame([
        (1, "a", "2026-01-01T10:00:00Z", 60.0, 4, 0, "m", 400),   # window empty on the 8th: a closing row (0 / 0)
        (2, "b", "2026-01-05T10:00:00Z", 60.0, 3, 0, "m", 300),
        (2, "c", "2026-01-07T10:00:00Z", 60.0, 5, 1, "m", 500),   # 800 tokens / 8 messages
        (3, "d", "2026-01-06T10:00:00Z", 60.0, 0, 0, "m", 90),    # tokens but no messages: x / 0
        (9, "z", "2026-01-08T23:00:00Z", 60.0, 1, 0, "m", 10),    # the log holds 2026-01-08 (no partial window)
    ]))
    platform = fp.FeaturePlatform(settings)
    platform.materialize("user_activity", start="2026-01-07", end="2026-01-08")
    return platform


def test_training_and_serving_give_identical_values(platform):
    entity_df = pd.DataFrame({"user_id": [1, 2, 3, 4, 2], "event_timestamp": [AT] * 5,
                              "prompt_tokens": [10, 50, 10, 10, 0]})
    training = platform.training_set(entity_df, FEATURES)
    online = platform.online_features(FEATURES, entity_df[["user_id", "prompt_tokens"]].to_dict("records"),
                                      now=AT.to_pydatetime())
    columns = [f.split(":")[1] for f in FEATURES]
    pd.testing.assert_frame_equal(training[columns], online[columns])
    # 0/0 (closing row), x/0 (no messages), a missing user and a zero-token prompt: null or 0.0, never inf.
    assert training["messages_sent_7d"].tolist()[:4] == [0, 8, 0, pd.NA]
    assert training["tokens_per_message"].tolist()[1] == 100.0
    assert np.isnan(training["tokens_per_message"].to_numpy()[[0, 2, 3]]).all()
    assert training["prompt_vs_typical_message"].tolist()[1] == 0.5 and training["prompt_vs_typical_message"].iloc[4] == 0
    assert not np.isinf(training[["tokens_per_message", "prompt_vs_typical_message"]].to_numpy()).any()
    as_dict = platform.online_features(FEATURES, entity_df[["user_id", "prompt_tokens"]].to_dict("records"),
                                       now=AT.to_pydatetime(), output="dict")
    assert as_dict["tokens_per_message"] == [None, 100.0, None, None, 100.0]
    assert as_dict["prompt_vs_typical_message"] == [None, 0.5, None, None, 0.0]


def test_statuses_and_full_feature_names_online(platform):
    got = platform.online_features(REQUEST, [{"user_id": 2, "prompt_tokens": 25}, {"user_id": 4, "prompt_tokens": 1}],
                                   now=AT.to_pydatetime(), with_metadata=True, full_feature_names=True)
    assert got["user_activity_request__tokens_per_message"].tolist()[0] == 100.0
    assert got["user_activity_request__tokens_per_message__status"].tolist() == ["present", "missing"]
    assert "user_activity__total_tokens_7d" not in got.columns  # inputs are fetched, not returned


def test_the_function_sees_the_same_frame_on_both_paths(platform):
    seen, original = [], SPEC.function

    def spy(df):
        seen.append(df.copy())
        return original(df)

    object.__setattr__(SPEC, "function", spy)  # the spec is frozen: patched for this test only
    try:
        platform.training_set(pd.DataFrame({"user_id": [2, 3], "event_timestamp": [AT] * 2, "prompt_tokens": [5, 6]}),
                              REQUEST)
        platform.online_features(REQUEST, [{"user_id": 2, "prompt_tokens": 5}, {"user_id": 3, "prompt_tokens": 6}],
                                 now=AT.to_pydatetime())
    finally:
        object.__setattr__(SPEC, "function", original)
    assert len(seen) == 2
    pd.testing.assert_frame_equal(seen[0].reset_index(drop=True), seen[1].reset_index(drop=True))


def test_a_missing_request_field_is_a_clear_error(platform):
    with pytest.raises(RequestFeatureError, match="prompt_tokens"):
        platform.training_set(pd.DataFrame({"user_id": [2], "event_timestamp": [AT]}), REQUEST)
    with pytest.raises(RequestFeatureError, match="prompt_tokens"):
        platform.online_features(REQUEST, [{"user_id": 2}], now=AT.to_pydatetime())
    with pytest.raises(RequestFeatureError, match="prompt_tokens.*int64"):
        platform.online_features(REQUEST, [{"user_id": 2, "prompt_tokens": "long"}], now=AT.to_pydatetime())
    # Outside int64: refused as the field's error before any store reads the row (Feast's embedded read raised a
    # raw ValueError converting the whole row; the HTTP server answered 500).
    for value in (2**63, -(2**63) - 1):
        with pytest.raises(RequestFeatureError, match="prompt_tokens.*int64"):
            platform.online_features(REQUEST, [{"user_id": 2, "prompt_tokens": value}], now=AT.to_pydatetime())
    with pytest.raises(fp.UnknownFeatureError, match="no feature 'nope'"):
        platform.online_features(["user_activity_request:nope"], [{"user_id": 2, "prompt_tokens": 1}])


def test_a_function_returning_the_wrong_thing_is_named():
    stored = pd.DataFrame({"user_activity__total_tokens_7d": pd.array([1], "Int64"),
                           "user_activity__messages_sent_7d": pd.array([1], "Int64")})
    request = pd.DataFrame({"prompt_tokens": [1]})
    for bad, text in [(lambda df: df.iloc[:0], "DataFrame of 1 rows"), (lambda df: pd.DataFrame({"x": [1]}), "did not return"),
                      (lambda df: 1 / 0, "ZeroDivisionError"),
                      (lambda df: pd.DataFrame({"tokens_per_message": ["a"], "prompt_vs_typical_message": [1.0]}), "float64")]:
        with pytest.raises(RequestFeatureError, match=text) as err:
            compute(dataclasses.replace(SPEC, function=bad), stored, request)
        assert "user_activity_request" in str(err.value)


@pytest.mark.parametrize("change, text", [
    ({"name": "Bad-Name"}, "snake_case"), ({"inputs": ("user_activity",)}, "view:feature"),
    ({"function": None}, "callable"), ({"features": ()}, "non-empty"),
    ({"request_fields": (Field("total_tokens_7d", "int64"),)}, "distinct"),
])
def test_spec_mistakes_are_refused_at_declaration(change, text):
    with pytest.raises(SpecError, match=text):
        RequestFeatureViewSpec(**{**{f.name: getattr(SPEC, f.name) for f in dataclasses.fields(SPEC)}, **change})


def test_stock_feast_lists_and_computes_the_request_views(platform):
    """Request views are registered as Feast on-demand feature views: `feast on-demand-feature-views list` shows
    them, and stock Feast's `get_online_features` computes them with the platform's function, to its values
    (stock Feast ignores TTLs, so the platform reads as of the partitions' time)."""
    from feature_platform.backends import feature_store

    feast_dir = write_feature_store_yaml(platform.settings).parent  # what every apply writes for stock Feast
    feast = Path(sys.executable).with_name("feast")
    listed = subprocess.run([str(feast), "-c", str(feast_dir), "on-demand-feature-views", "list"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, **platform.settings.as_env()})
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert SPEC.name in listed.stdout

    rows = [{"user_id": u, "prompt_tokens": p} for u, p in ((1, 10), (2, 50), (3, 10), (4, 10), (2, 0))]
    stock = feature_store(platform.settings).get_online_features(REQUEST, entity_rows=rows).to_dict()
    ours = platform.online_features(REQUEST, rows, now=AT.to_pydatetime(), output="dict")
    for name in SPEC.feature_names:
        assert stock[name] == ours[name], name
    assert ours["tokens_per_message"] == [None, 100.0, None, None, 100.0]  # nulls and values alike
