"""`feature-platform serve`: Feast's feature server over real HTTP gives what the Python API gives."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

import feature_platform as fp
from feature_platform.demo.generator import generate_day
from feature_platform.serving.server import running_server
from feature_platform_tests.browser import free_port
from feature_platform_tests.helpers import settings_of, write_sessions

FEATURES = ["user_activity:sessions_7d", "user_activity:avg_session_duration_sec", "user_activity:preferred_model",
            "user_activity:total_tokens_7d", "user_realtime:current_session_messages"]
STATUS = {"present": "PRESENT", "missing": "NOT_FOUND", "expired": "OUTSIDE_MAX_AGE"}
REALTIME = "user_realtime_events"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served(profile, tmp_path_factory):
    """A platform with yesterday materialized and a few pushed events, and its running server (shared by
    the module's tests: they push to entities of their own)."""
    with settings_of(profile, tmp_path_factory.mktemp(profile)) as settings:
        yield from _serve(settings)


def _serve(settings):
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    write_sessions(settings.sessions_path,
                   pd.concat([generate_day(yesterday - timedelta(days=d), 60) for d in range(8)], ignore_index=True))
    platform = fp.FeaturePlatform(settings)
    platform.materialize("user_activity", start=yesterday.isoformat())
    now = pd.Timestamp.now(tz="UTC")
    # user 1: fresh; user 2: pushed two hours ago, older than the view's one-hour TTL (expired).
    platform.push(REALTIME, _events([1, 2], [now - pd.Timedelta(seconds=5), now - pd.Timedelta(hours=2)], [4, 9]),
                  direct=True)
    with running_server(platform) as url:
        yield platform, url


def _events(users, stamps, messages) -> pd.DataFrame:
    return pd.DataFrame({"user_id": users, "event_timestamp": stamps, "current_session_messages": messages,
                         "current_session_tokens": [10 * m for m in messages],
                         "last_active_minutes_ago": [0.5] * len(users)})


def _post(url: str, path: str, body: dict) -> requests.Response:
    return requests.post(url + path, json=body, timeout=30)


def _by_name(response: dict) -> dict[str, dict]:
    return dict(zip(response["metadata"]["feature_names"], response["results"]))


def test_http_online_features_equal_the_python_api(served):
    platform, url = served
    users = [int(u) for u in platform.offline_table("user_activity")["user_id"].unique()[:20]] + [1, 2, 987654321]
    response = _post(url, "/get-online-features", {"features": FEATURES, "entities": {"user_id": users}})
    assert response.status_code == 200, response.text
    got = _by_name(response.json())
    expected = platform.online_features(FEATURES, [{"user_id": u} for u in users], with_metadata=True, output="dict")
    assert list(got) == ["user_id", *(f.split(":")[1] for f in FEATURES)]
    assert got["user_id"]["values"] == users
    for ref in FEATURES:
        name = ref.split(":")[1]
        assert got[name]["values"] == expected[name], name
        assert got[name]["statuses"] == [STATUS[s] for s in expected[f"{name}__status"]], name
        stamps = [None if t is None else pd.Timestamp(t, tz="UTC") for t in expected[f"{name}__event_timestamp"]]
        served_stamps = [pd.Timestamp(t) for t in got[name]["event_timestamps"]]
        assert [t for t, e in zip(served_stamps, stamps) if e is not None] == [e for e in stamps if e is not None]
    realtime = got["current_session_messages"]
    # The TTL is enforced the platform's way, in Feast's vocabulary: expired values are null, not stale numbers.
    assert realtime["values"][-3:] == [4, None, None]
    assert realtime["statuses"][-3:] == ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"]
    stored = set(platform.offline_table("user_activity")["user_id"])
    assert [s == "PRESENT" for s in got["sessions_7d"]["statuses"]] == [u in stored for u in users]


def test_an_absent_entity_as_stock_feast_and_the_platform_report_it(served):
    """What docs/serving.md's table says of an absent entity holds: stock Feast (`feast serve` reads the same way)
    reports it NOT_FOUND on SQLite but PRESENT with a null value on Redis; the platform NOT_FOUND on both."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    from feature_platform.backends import feature_store

    platform, url = served
    absent = 987654321
    stock = feature_store(platform.settings).get_online_features(["user_activity:sessions_7d"], [{"user_id": absent}])
    result = stock.proto.results[1]  # results[0] is the join key
    stock_status = FieldStatus.Name(result.statuses[0])
    assert result.values[0].WhichOneof("val") is None  # no value either way
    ours = _by_name(_post(url, "/get-online-features", {"features": ["user_activity:sessions_7d"],
                                                        "entities": {"user_id": [absent]}}).json())["sessions_7d"]
    assert (ours["values"], ours["statuses"]) == ([None], ["NOT_FOUND"])

    row = next(line for line in (ROOT / "docs" / "serving.md").read_text().splitlines()
               if line.startswith("| An absent entity |"))
    stock_cell, platform_cell = [cell.strip() for cell in row.strip("| ").split("|")][1:3]
    store = {"embedded": "SQLite", "services": "Redis"}[platform.settings.profile]
    assert f"`{stock_status}`" in next(part for part in stock_cell.split(";") if store in part), (store, stock_status)
    assert platform_cell == "`NOT_FOUND`"


def test_feature_service_and_full_feature_names(served):
    platform, url = served
    users = [int(u) for u in platform.offline_table("user_activity")["user_id"].unique()[:5]]
    response = _post(url, "/get-online-features", {"feature_service": "churn_features", "full_feature_names": True,
                                                   "entities": {"user_id": users}})
    assert response.status_code == 200, response.text
    got = _by_name(response.json())
    expected = platform.online_features("churn_features", [{"user_id": u} for u in users], full_feature_names=True,
                                        output="dict")
    assert list(got) == list(expected)
    assert all(got[c]["values"] == expected[c] for c in expected)


def test_push_over_http_is_validated_newest_wins_and_reaches_offline(served):
    platform, url = served
    now = pd.Timestamp.now(tz="UTC")
    newer, older = now - pd.Timedelta(seconds=1), now - pd.Timedelta(seconds=30)
    body = {"push_source_name": REALTIME, "to": "online_and_offline",
            "df": _events([70007, 70007, 70008], [newer.isoformat(), older.isoformat(), newer.isoformat()], [5, 3, -1]).to_dict("list")}
    response = _post(url, "/push", body)
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in ("received", "accepted", "rejected")} == {"received": 3, "accepted": 2, "rejected": 1}
    # An older event pushed afterwards (Feast's push would overwrite) does not replace the newer value.
    body["df"] = _events([70007], [(now - pd.Timedelta(seconds=20)).isoformat()], [1]).to_dict("list")
    assert _post(url, "/push", body).status_code == 200
    read = _by_name(_post(url, "/get-online-features", {"features": ["user_realtime:current_session_messages"],
                                                      "entities": {"user_id": [70007, 70008]}}).json())
    assert read["current_session_messages"]["values"] == [5, None]
    platform.ingest_pending(REALTIME)
    offline = platform.offline_table("user_realtime")
    seven = offline[offline["user_id"] == 70007].sort_values("event_timestamp")
    assert seven["current_session_messages"].tolist() == [3, 1, 5]  # every accepted event once, none twice
    assert (offline["user_id"] != 70008).all()  # the rejected row (negative count) went to the dead-letter only


def test_offline_push_lands_in_the_transport_for_the_sensor(served):
    platform, url = served
    stamp = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=3)).isoformat()
    response = _post(url, "/push", {"push_source_name": REALTIME, "to": "offline",
                                    "df": _events([70011], [stamp], [2]).to_dict("list")})
    assert response.status_code == 202, response.text
    assert response.json()["batch_id"] in platform.ingest_pending(REALTIME)
    assert 70011 in set(platform.offline_table("user_realtime")["user_id"])


def test_clear_http_errors(served):
    _platform, url = served
    users = {"user_id": [1]}
    unknown = _post(url, "/get-online-features", {"features": ["user_activity:nope"], "entities": users})
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    assert _post(url, "/get-online-features", {"features": ["nope:x"], "entities": users}).status_code == 404
    bad_key = _post(url, "/get-online-features", {"features": FEATURES[:1], "entities": {"user_id": ["abc"]}})
    assert bad_key.status_code == 400 and "user_id" in bad_key.json()["detail"]
    missing_key = _post(url, "/get-online-features", {"features": FEATURES[:1], "entities": {"account": [1]}})
    assert missing_key.status_code == 404 and "user_id" in missing_key.json()["detail"]
    bad_mode = _post(url, "/push", {"push_source_name": REALTIME, "to": "sideways", "df": {"user_id": [1]}})
    assert bad_mode.status_code == 400 and "sideways" in bad_mode.json()["detail"]
    ragged = _post(url, "/push", {"push_source_name": REALTIME, "df": {"user_id": [1, 2], "event_timestamp": ["x"]}})
    assert ragged.status_code == 400
    assert _post(url, "/push", {"push_source_name": "nope", "df": {"user_id": [1]}}).status_code == 404
    # Materialization is a Dagster run; raw online writes would bypass validation: not mounted.
    for path in ("/materialize", "/materialize-incremental", "/write-to-online-store"):
        assert _post(url, path, {}).status_code == 404, path


def test_health_checks_the_online_store(served):
    platform, url = served
    health = requests.get(url + "/health", timeout=30)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "profile": platform.settings.profile, "registry": "ok",
                             "online_store": "ok"}


def test_the_cli_serves_feasts_endpoints(served, tmp_path, workers=2):
    """`feature-platform serve` from the README, in its own process (two workers: each builds its app)."""
    platform, _url = served
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, **platform.settings.as_env(), "FEATURE_PLATFORM_SESSIONS_PATH": str(platform.settings.sessions_path)}
    server = subprocess.Popen([sys.executable, "-m", "feature_platform.cli", "serve", "--port", str(port),
                               "--workers", str(workers)], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(url + "/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait()
                pytest.fail(f"the server did not become healthy: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        got = _by_name(_post(url, "/get-online-features", {"features": FEATURES[:2], "entities": {"user_id": [1, 2]}}).json())
        expected = platform.online_features(FEATURES[:2], [{"user_id": 1}, {"user_id": 2}], output="dict")
        assert [got[c]["values"] for c in ("sessions_7d", "avg_session_duration_sec")] == \
            [expected["sessions_7d"], expected["avg_session_duration_sec"]]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def test_request_time_features_over_http(served):
    platform, url = served
    features = ["user_activity:messages_sent_7d", "user_activity_request:tokens_per_message",
                "user_activity_request:prompt_vs_typical_message"]
    users = [int(u) for u in platform.offline_table("user_activity")["user_id"].unique()[:10]] + [987654321]
    prompts = list(range(len(users)))
    response = _post(url, "/get-online-features", {"features": features,
                                                   "entities": {"user_id": users, "prompt_tokens": prompts}})
    assert response.status_code == 200, response.text
    got = _by_name(response.json())
    expected = platform.online_features(features, [{"user_id": u, "prompt_tokens": p} for u, p in zip(users, prompts)],
                                        with_metadata=True, output="dict")
    assert list(got) == ["user_id", "messages_sent_7d", "tokens_per_message", "prompt_vs_typical_message"]
    for name in list(got)[1:]:
        assert got[name]["values"] == expected[name], name
        assert got[name]["statuses"] == [STATUS[s] for s in expected[f"{name}__status"]], name
    assert got["tokens_per_message"]["statuses"][-1] == "NOT_FOUND"
    no_prompt = _post(url, "/get-online-features", {"features": features, "entities": {"user_id": users}})
    assert no_prompt.status_code == 400 and "prompt_tokens" in no_prompt.json()["detail"]


def test_a_stock_feast_client_reads_through_the_server(served):
    """Feast's own remote online store (`online_store: {type: remote, path: <url>}`) against the server:
    what a Feast user's client code gets, with the platform's values and TTL."""
    from feast import FeatureStore, RepoConfig

    platform, url = served
    base = platform.runtime.feast.config  # the same registry; the values come over HTTP
    client = FeatureStore(config=RepoConfig(project=base.project, provider="local", registry=base.registry_config,
                                            online_store={"type": "remote", "path": url},
                                            entity_key_serialization_version=3))
    assert type(client.config.online_store).__name__ == "RemoteOnlineStoreConfig"
    users = [int(u) for u in platform.offline_table("user_activity")["user_id"].unique()[:5]] + [1, 2, 987654321]
    refs = ["user_activity:sessions_7d", "user_activity:preferred_model", "user_realtime:current_session_messages"]
    got = client.get_online_features(features=refs, entity_rows=[{"user_id": u} for u in users]).to_dict()
    expected = platform.online_features(refs, [{"user_id": u} for u in users], output="dict")
    assert got["user_id"] == users
    for ref in refs:
        name = ref.split(":")[1]
        assert got[name] == expected[name], name
    assert got["current_session_messages"][-3:] == [4, None, None]  # fresh, expired (TTL), absent


def test_the_served_json_is_feasts_own_response_document(served):
    """The server builds its JSON from the platform's read; it must be exactly the document Feast's endpoint
    makes from the protobuf response (`convert_response_to_dict`), for every kind of value and status."""
    from feast.feature_server_utils import convert_response_to_dict

    from feature_platform.serving.feature_store import PlatformFeatureStore

    platform, url = served
    store = PlatformFeatureStore(platform)
    users = [int(u) for u in platform.offline_table("user_activity")["user_id"].unique()[:25]] + [1, 2, 987654321]
    # user 3: a fresh push with a float32 value that is not a short decimal (0.1)
    platform.push(REALTIME, _events([3], [pd.Timestamp.now(tz="UTC").floor("us") - pd.Timedelta(microseconds=7)],
                                    [5]).assign(last_active_minutes_ago=[0.1]), direct=True)
    realtime = [f"user_realtime:{f}" for f in ("current_session_messages", "current_session_tokens",
                                               "last_active_minutes_ago")]
    cases = [
        (FEATURES + realtime[1:], {"user_id": users + [3]}, False),
        ("churn_features", {"user_id": users}, True),
        (["user_activity:messages_sent_7d", "user_activity_request:tokens_per_message",
          "user_activity_request:prompt_vs_typical_message"], {"user_id": users, "prompt_tokens": list(range(len(users)))},
         False),
        (realtime, {"user_id": [3]}, True),
        (["user_activity:sessions_7d"], {"user_id": []}, False),
    ]
    for features, entities, full in cases:
        direct = store.online_response_dict(features, entities, full)
        refs = store.get_feature_service(features) if isinstance(features, str) else features
        feasts = convert_response_to_dict(store.get_online_features(refs, entities, full).proto)
        assert direct == feasts, features
        body = {"entities": entities, "full_feature_names": full,
                **({"feature_service": features} if isinstance(features, str) else {"features": features})}
        response = _post(url, "/get-online-features", body)
        assert response.status_code == 200, response.text
        assert response.json() == feasts
    pushed = _by_name(store.online_response_dict(realtime, {"user_id": [3]}))["last_active_minutes_ago"]
    assert pushed["statuses"] == ["PRESENT"] and pushed["values"] == [float(np.float32(0.1))]  # float32, as Feast's
    assert pd.Timestamp(pushed["event_timestamps"][0]) > pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=10)


def test_oversized_requests_are_refused_with_413_naming_the_limit(served):
    """Issue 19 item 8: a 7 MB body of 1M ids answered 500 after 117 s. Bodies over
    FEATURE_PLATFORM_SERVING_MAX_BODY_BYTES are refused before they are read (or as soon as a streamed one passes
    it), reads of more rows than FEATURE_PLATFORM_SERVING_MAX_ENTITIES before any work; both limits configurable."""
    platform, url = served
    feature = FEATURES[:1]
    huge = json.dumps({"features": feature, "entities": {"user_id": list(range(1_000_000))}})
    for body in (huge, (b"x" * 65_536 for _ in range(100))):  # a declared length, then a streamed (chunked) one
        response = requests.post(url + "/get-online-features", data=body, timeout=60)
        assert response.status_code == 413, response.text[:300]
        assert "limit of 4194304 bytes (FEATURE_PLATFORM_SERVING_MAX_BODY_BYTES)" in response.json()["detail"]
    many = _post(url, "/get-online-features", {"features": feature, "entities": {"user_id": list(range(10_001))}})
    assert many.status_code == 413
    assert "10001 entity rows are over the server's limit of 10000 per request (FEATURE_PLATFORM_SERVING_MAX_ENTITIES)" \
        in many.json()["detail"]
    at_limit = _post(url, "/get-online-features", {"features": feature, "entities": {"user_id": list(range(10_000))}})
    assert at_limit.status_code == 200 and len(_by_name(at_limit.json())["sessions_7d"]["values"]) == 10_000

    small = fp.FeaturePlatform(platform.settings.with_(serving_max_body_bytes=2_000, serving_max_entities=5))
    with running_server(small) as small_url:
        assert _post(small_url, "/get-online-features", {"features": feature, "entities": {"user_id": [1] * 5}}
                     ).status_code == 200
        refused = _post(small_url, "/get-online-features", {"features": feature, "entities": {"user_id": [1] * 6}})
        assert refused.status_code == 413 and "limit of 5 per request" in refused.json()["detail"]
        push = _post(small_url, "/push", {"push_source_name": REALTIME, "df": {"user_id": list(range(1_000))}})
        assert push.status_code == 413 and "limit of 2000 bytes" in push.json()["detail"]


@contextmanager
def server_logs():
    """Every log record of the in-process server: the root logger's and uvicorn's (which does not propagate)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def test_bad_requests_are_400_one_line_never_echoed_never_a_traceback(served):
    """Issue 19 item 9: mismatched entity columns were a 500 (a plain ValueError, its traceback logged three
    times); malformed JSON and bodies of the wrong shape were FastAPI's 422 quoting the whole body."""
    _platform, url = served
    marker = "A" * 50_000
    with server_logs() as records:
        ragged = _post(url, "/get-online-features", {"features": FEATURES[:1],
                                                     "entities": {"user_id": [1, 2], "prompt_tokens": [1]}})
        assert ragged.status_code == 400, ragged.text[:300]
        assert ragged.json() == {"error": "InvalidEntityError", "detail": "entity columns must have one value per "
                                 "row; their lengths differ ('user_id': 2, 'prompt_tokens': 1)"}
        for body in ('{"features": ["user_activity:sessions_7d"], "entities": {"user_id": [1, "' + marker,  # cut off
                     json.dumps({"features": FEATURES[:1], "entities": marker}),  # not a table
                     json.dumps([marker]), "", "null"):
            response = requests.post(url + "/get-online-features", data=body, timeout=30,
                                     headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (body[:80], response.status_code, response.text[:300])
            assert response.json()["error"] == "BadRequestError" and "invalid request" in response.json()["detail"]
            assert len(response.content) < 1_000 and "AAAA" not in response.text
    assert not [r for r in records if r.exc_info or "Traceback" in r.getMessage()]


def test_an_unexpected_error_is_a_500_logged_once_without_its_text(served, monkeypatch):
    from feature_platform.serving.feature_store import PlatformFeatureStore

    _platform, url = served

    def broken(*_args, **_kwargs):
        raise RuntimeError("internal detail that must not reach the caller")

    monkeypatch.setattr(PlatformFeatureStore, "online_response_dict", broken)
    with server_logs() as records:
        response = _post(url, "/get-online-features", {"features": FEATURES[:1], "entities": {"user_id": [1]}})
    assert response.status_code == 500
    assert response.json() == {"error": "FeaturePlatformError",
                               "detail": "internal error (RuntimeError); the server logged it"}
    logged = [r for r in records if r.exc_info or "Traceback" in r.getMessage()]
    assert len(logged) == 1 and "internal detail" in str(logged[0].exc_info[1])
