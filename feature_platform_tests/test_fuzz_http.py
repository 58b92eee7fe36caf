"""The HTTP feature server fuzzed against its own OpenAPI document with schemathesis (issue 19 item 9): requests
generated from the document (valid and invalid bodies, missing and wrong types, odd media types), sent to a
real server on each profile, with a valid token, a wrong one and none. Every answer must be a status the
document lists for that operation, never a 5xx, with the documented media type. Bounded: a limited number of
examples per test, drawn under the suite's Hypothesis settings profile (the CI profile derandomizes them)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

import feature_platform as fp
from feature_platform.demo.generator import generate_day
from feature_platform.serving.server import running_server
from feature_platform_tests.helpers import settings_of, write_sessions

# A reader of every view and service, and a producer: together they may call every operation.
READER, PRODUCER = "fuzz-reader-3b9e0c", "fuzz-producer-58d21a"
TOKENS_YAML = (f"reader:\n  token_sha256: {hashlib.sha256(READER.encode()).hexdigest()}\n"
               "  roles: [feature_reader, churn_model]\n"
               f"producer:\n  token: {PRODUCER}\n  roles: [event_producer]\n")
CALLERS = {"reader": READER, "producer": PRODUCER, "wrong": "not-a-known-token", "none": None}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def server(profile, tmp_path_factory):
    """A materialized platform behind a token-protected server (embedded) or an open one (services)."""
    with settings_of(profile, tmp_path_factory.mktemp(f"fuzz_http_{profile}")) as settings_:
        yield from _serve(settings_, tokens=profile == "embedded")


def _serve(settings_, tokens: bool):
    if tokens:
        path = settings_.home.parent / "tokens.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TOKENS_YAML)
        settings_ = settings_.with_(serving_tokens_file=str(path))
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    write_sessions(settings_.sessions_path,
                   pd.concat([generate_day(yesterday - timedelta(days=d), 20) for d in range(8)], ignore_index=True))
    platform = fp.FeaturePlatform(settings_)
    platform.materialize("user_activity", start=yesterday.isoformat())
    with running_server(platform) as url:
        yield url, tokens


@pytest.fixture(scope="module")
def api(server):
    url, tokens = server
    headers = {"Authorization": f"Bearer {READER}"} if tokens else {}
    return schemathesis.openapi.from_url(url + "/openapi.json", headers=headers)


def test_every_answer_is_a_documented_status_never_a_server_error(api, server):
    """Each generated request, valid for the document or not, is sent as every kind of caller: a reader, a
    producer, a wrong token, none (the open services server: only none). (Schemathesis' own pytest loader
    needs a pytest attribute that pytest 9 removed, so its strategies drive a Hypothesis test here.)"""
    _url, tokens = server
    callers = CALLERS.items() if tokens else [("none", None)]

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(api.as_strategy(GenerationMode.POSITIVE), api.as_strategy(GenerationMode.NEGATIVE)))
    def every_caller_gets_a_documented_answer(case):
        for caller, token in callers:
            response = case.call(headers={"Authorization": f"Bearer {token}"} if token else {})
            case.validate_response(response, checks=CHECKS)
            if tokens and token in (None, CALLERS["wrong"]) and case.path != "/health":
                assert response.status_code == 401, (caller, response.text[:300])
            assert len(response.content) < 20_000 or response.status_code == 200, response.text[:300]  # no echo

    every_caller_gets_a_documented_answer()


# Bodies of the documented shape whose contents are hostile: real and unknown feature references, services and
# columns; entity and pushed values of every JSON type, out of range, ragged columns. The generated requests
# above rarely name a real feature; these reach the reads and pushes behind validation.
JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(2**63 - 2, 2**64), st.floats(),
                 st.text(max_size=12), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
USERS = st.one_of(st.integers(0, 30), st.integers(0, 30), st.integers(-(2**63), 2**63 - 1), JUNK)
REFS = st.sampled_from(["user_activity:sessions_7d", "user_activity:preferred_model", "user_realtime:last_active_minutes_ago",
                        "user_activity_request:tokens_per_message", "user_activity_v3:sessions_7d", "user_activity:nope",
                        "nope:x", "user_activity", ""])
KEYS = st.one_of(st.sampled_from(["user_id", "user_id", "prompt_tokens", "account"]), st.text(max_size=4))


def _columns(main: str, others: list[str], keys: st.SearchStrategy, cells: st.SearchStrategy) -> st.SearchStrategy:
    """Columns of one length, mostly with the `main` column and some of `others` (the shape a real client
    sends), or any columns, ragged or not lists at all."""
    even = st.integers(0, 6).flatmap(lambda n: st.fixed_dictionaries(
        {main: st.lists(cells, min_size=n, max_size=n)},
        optional={k: st.lists(cells, min_size=n, max_size=n) for k in others}))
    return st.one_of(even, even, even, st.dictionaries(keys, st.one_of(st.lists(cells, max_size=5), JUNK), max_size=4))


ENTITIES = _columns("user_id", ["prompt_tokens"], KEYS, USERS)
READ_BODIES = st.one_of(
    st.fixed_dictionaries({"features": st.lists(REFS, min_size=1, max_size=3), "entities": ENTITIES},
                          optional={"full_feature_names": st.booleans()}),
    st.fixed_dictionaries({"feature_service": st.sampled_from(["churn_features", "churn_features", "nope"]),
                           "entities": ENTITIES}),
    st.fixed_dictionaries({"entities": ENTITIES}, optional={"features": st.lists(st.text(max_size=8), max_size=2),
                                                            "feature_service": st.text(max_size=5),
                                                            "full_feature_names": JUNK}))
PUSHED = ["event_timestamp", "current_session_messages", "current_session_tokens", "last_active_minutes_ago", "extra"]
CELLS = st.one_of(USERS, st.floats(0, 1e40), st.just(datetime.now(timezone.utc).isoformat()),
                  st.sampled_from(["2026-01-01T00:00:00Z", "not a time", "9999-12-31T23:59:59Z", "1"]))
PUSH_BODIES = st.fixed_dictionaries(
    {"push_source_name": st.one_of(st.just("user_realtime_events"), st.just("user_realtime_events"), st.text(max_size=8)),
     "df": _columns("user_id", PUSHED, st.one_of(st.sampled_from(PUSHED), st.text(max_size=4)), CELLS)},
    optional={"to": st.one_of(st.sampled_from(["online", "offline", "online_and_offline", "sideways"]), st.text(max_size=4))})


def test_hostile_contents_get_documented_answers_never_a_server_error(server):
    url, tokens = server
    document = requests.get(url + "/openapi.json", timeout=30,
                            headers={"Authorization": f"Bearer {READER}"} if tokens else {}).json()
    documented = {path: {int(code) for code in ops["post"]["responses"]} for path, ops in document["paths"].items()
                  if "post" in ops}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(READ_BODIES.map(lambda b: ("/get-online-features", b, READER)),
                     PUSH_BODIES.map(lambda b: ("/push", b, PRODUCER))))
    def answered(request):
        path, body, token = request
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if tokens else {})}
        # Python's JSON writes NaN and Infinity, and the server's parser reads them: as hostile clients may send
        response = requests.post(url + path, data=json.dumps(body), timeout=60, headers=headers)
        assert response.status_code in documented[path], (path, body, response.status_code, response.text[:300])
        assert response.status_code < 500, (path, body, response.text[:300])
        if response.status_code >= 400:
            assert set(response.json()) == {"error", "detail"} and len(response.json()["detail"]) < 1_500

    answered()
