"""Access control of `feature-platform serve`: bearer tokens from a secrets file, permissions per feature
view and feature service declared in specs/access.py, enforced by Feast's permission model over HTTP."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import requests
from feast.permissions.action import AuthzedAction

import feature_platform as fp
from feature_platform.cli import main
from feature_platform.demo.generator import generate_day
from feature_platform.errors import FeaturePlatformError
from feature_platform.serving.access import Tokens, TokensFileError, check_access_specs, feast_permissions
from feature_platform.serving.server import running_server
from feature_platform.spec import AccessSpec, SpecError
from feature_platform_tests.example_repo import EXAMPLE
from feature_platform_tests.helpers import make_embedded_settings, write_sessions

TOKENS = {"churn": "churn-7f3a9c-secret", "producer": "producer-51b2e0-secret", "reader": "reader-c0ffee-secret"}
ROWS = {"user_id": [1, 2]}
READ_VIEWS = {"features": ["user_activity:sessions_7d", "user_realtime:current_session_messages"], "entities": ROWS}
READ_SERVICE = {"feature_service": "churn_features", "entities": ROWS}
READ_REQUEST = {"features": ["user_activity_request:tokens_per_message"], "entities": {**ROWS, "prompt_tokens": [5, 6]}}


@pytest.fixture(scope="module")
def server(server_with_platform):
    return server_with_platform[1]


@pytest.fixture(scope="module")
def server_with_platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("access")
    tokens_file = root / "tokens.yaml"
    tokens_file.write_text(
        f"churn-service:\n  token: {TOKENS['churn']}\n  roles: [churn_model]\n"
        f"chat-backend:\n  token_sha256: {hashlib.sha256(TOKENS['producer'].encode()).hexdigest()}\n"
        "  roles: [event_producer]\n"
        f"analytics:\n  token: {TOKENS['reader']}\n  roles: [feature_reader]\n")
    settings = make_embedded_settings(root).with_(serving_tokens_file=str(tokens_file))
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    write_sessions(settings.sessions_path,
                   pd.concat([generate_day(yesterday - timedelta(days=d), 20) for d in range(8)], ignore_index=True))
    platform = fp.FeaturePlatform(settings)
    platform.materialize("user_activity", start=yesterday.isoformat())
    with running_server(platform) as url:
        yield platform, url


def _call(url: str, path: str, body: dict, caller: str | None = None, token: str | None = None) -> requests.Response:
    token = token or (TOKENS[caller] if caller else None)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(url + path, json=body, headers=headers, timeout=30)


def _push_body() -> dict:
    now = pd.Timestamp.now(tz="UTC").isoformat()
    return {"push_source_name": "user_realtime_events", "to": "online_and_offline",
            "df": {"user_id": [5], "event_timestamp": [now], "current_session_messages": [2],
                   "current_session_tokens": [20], "last_active_minutes_ago": [0.5]}}


@pytest.mark.parametrize("caller, path, body, code", [
    ("churn", "/get-online-features", READ_SERVICE, 200),
    ("churn", "/get-online-features", READ_VIEWS, 403),       # granted the service, not the views
    ("churn", "/push", "push", 403),
    ("producer", "/push", "push", 200),
    ("producer", "/get-online-features", READ_VIEWS, 403),    # push-only
    ("reader", "/get-online-features", READ_VIEWS, 200),
    ("reader", "/get-online-features", READ_REQUEST, 200),    # request-time features: by their input views
    ("reader", "/get-online-features", READ_SERVICE, 403),    # views, not the service
    ("reader", "/push", "push", 403),
])
def test_permissions_are_enforced_per_view_and_service(server, caller, path, body, code):
    response = _call(server, path, _push_body() if body == "push" else body, caller)
    assert response.status_code == code, response.text
    if code == 403:
        assert "may not" in response.json()["detail"]


def test_callers_must_authenticate(server):
    for token in (None, "not-a-token"):
        response = _call(server, "/get-online-features", READ_SERVICE, token=token)
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    scheme = requests.post(server + "/get-online-features", json=READ_SERVICE, timeout=30,
                           headers={"Authorization": f"Basic {TOKENS['churn']}"})
    assert scheme.status_code == 401
    assert requests.get(server + "/health", timeout=30).status_code == 200  # probes need no token


def test_refusals_are_logged_without_the_token(server, caplog):
    with caplog.at_level(logging.WARNING, logger="feature_platform.serving.access"):
        assert _call(server, "/push", _push_body(), "churn").status_code == 403
        assert _call(server, "/get-online-features", READ_SERVICE, token="guess-" + TOKENS["reader"]).status_code == 401
    text = caplog.text
    assert "denied /push: caller 'churn-service' (roles ['churn_model']) may not push FeatureView 'user_realtime'" in text
    assert "refused /get-online-features: unknown bearer token" in text
    assert not any(t in text for t in TOKENS.values())


def test_access_specs_become_feast_permissions():
    spec = AccessSpec(name="a", roles=("r",), actions=("read", "push"), feature_views=("user_realtime",))
    (permission,) = feast_permissions(EXAMPLE, {"a": spec})
    assert permission.name_patterns == ["user_realtime"] and permission.policy.roles == ["r"]
    assert set(permission.actions) == {AuthzedAction.READ_ONLINE, AuthzedAction.WRITE_ONLINE, AuthzedAction.WRITE_OFFLINE}
    check_access_specs(EXAMPLE)  # the declared ones name existing views and services
    with pytest.raises(FeaturePlatformError, match="nope"):
        check_access_specs(EXAMPLE, {"b": AccessSpec(name="b", roles=("r",), actions=("read",), feature_services=("nope",))})
    with pytest.raises(SpecError, match="read-only"):
        AccessSpec(name="c", roles=("r",), actions=("push",), feature_services=("churn_features",))
    with pytest.raises(SpecError, match="at least one"):
        AccessSpec(name="d", roles=("r",), actions=("read",))


def test_a_bad_tokens_file_is_a_clear_error_that_never_echoes_a_token(tmp_path):
    path = tmp_path / "tokens.yaml"
    for text, message in [("[1, 2]", "mapping"), ("svc:\n  token: s3cret-value\n", "roles"),
                          ("svc:\n  token_sha256: s3cret-value\n  roles: [r]\n", "token_sha256")]:
        path.write_text(text)
        with pytest.raises(TokensFileError, match=message) as err:
            Tokens.load(path)
        assert "s3cret" not in str(err.value)
    with pytest.raises(TokensFileError, match="cannot be read"):
        Tokens.load(tmp_path / "missing.yaml")


def test_the_cli_will_not_expose_an_unauthenticated_server(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FEATURE_PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FEATURE_PLATFORM_SERVING_TOKENS_FILE", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 1
    assert "without authentication" in capsys.readouterr().err


def test_the_deployment_template_loads_and_names_declared_roles(tmp_path):
    from pathlib import Path

    from feature_platform_tests.example_repo import EXAMPLE

    template = (Path(__file__).resolve().parents[1] / "deploy" / "serving_tokens.example.yaml").read_text()
    with pytest.raises(TokensFileError, match="token_sha256"):  # placeholders are not tokens
        Tokens.load(_written(tmp_path / "as-is.yaml", template))
    filled = template.replace("REPLACE-with-the-sha256-of-its-token", hashlib.sha256(b"t").hexdigest())
    callers = Tokens.load(_written(tmp_path / "filled.yaml", filled))._callers.values()
    declared = {role for spec in EXAMPLE.access.values() for role in spec.roles}
    assert callers and all(set(c.roles) <= declared for c in callers)


def test_a_stock_feast_client_sends_its_token(server_with_platform):
    """Feast's remote online store with `auth: {type: kubernetes, user_token: ...}` sends the bearer token."""
    from feast import FeatureStore, RepoConfig

    platform, url = server_with_platform
    base = platform.runtime.feast.config

    def client(token: str) -> FeatureStore:
        return FeatureStore(config=RepoConfig(
            project=base.project, provider="local", registry=base.registry_config, entity_key_serialization_version=3,
            online_store={"type": "remote", "path": url}, auth={"type": "kubernetes", "user_token": token}))

    refs = ["user_activity:sessions_7d"]
    got = client(TOKENS["reader"]).get_online_features(features=refs, entity_rows=[{"user_id": 1}, {"user_id": 2}])
    assert got.to_dict()["sessions_7d"] == platform.online_features(refs, [{"user_id": 1}, {"user_id": 2}],
                                                                     output="dict")["sessions_7d"]
    with pytest.raises(Exception, match="403|may not"):
        client(TOKENS["producer"]).get_online_features(features=refs, entity_rows=[{"user_id": 1}])


def _written(path, text: str):
    path.write_text(text)
    return path


def _raw_post_head(url: str, path: str, length: int, headers: str = "") -> str:
    """Send a POST's headers announcing a `length`-byte body and only 1 KB of it; what the server answers
    (it must not wait for the rest: a 20 s socket timeout fails the test instead)."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=20) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {address.hostname}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {length}\r\n{headers}\r\n".encode() + b"[" * 1024)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer.decode("latin-1")


def test_the_token_is_checked_before_the_body_is_read_and_the_body_never_echoed(server):
    """Issue 19 item 9: an unauthenticated 10 MB POST was read, parsed and echoed back whole in a 422."""
    ten_mb = 10 * 1024 * 1024
    for path in ("/get-online-features", "/push"):
        assert _raw_post_head(server, path, ten_mb).startswith("HTTP/1.1 401"), path
        assert _raw_post_head(server, path, ten_mb, "Authorization: Bearer not-a-token\r\n").startswith("HTTP/1.1 401")
        # a known caller's oversized body: refused by its declared length, unread
        assert _raw_post_head(server, path, ten_mb, f"Authorization: Bearer {TOKENS['reader']}\r\n"
                              ).startswith("HTTP/1.1 413"), path
    whole = requests.post(server + "/get-online-features", data=b'{"entities": "' + b"B" * ten_mb + b'"}', timeout=60,
                          headers={"Content-Type": "application/json"})
    assert whole.status_code == 401 and len(whole.content) < 500 and "BBBB" not in whole.text


def test_only_health_answers_without_a_token(server):
    """Issue 19 item 9: /docs and /openapi.json answered without a token."""
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect", "/no-such-path"):
        refused = requests.get(server + path, timeout=30)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer", path
        assert requests.get(server + path, timeout=30, headers={"Authorization": "Bearer wrong"}).status_code == 401
    reader = {"Authorization": f"Bearer {TOKENS['reader']}"}
    assert requests.get(server + "/docs", headers=reader, timeout=30).status_code == 200
    document = requests.get(server + "/openapi.json", headers=reader, timeout=30).json()
    assert document["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    read = document["paths"]["/get-online-features"]["post"]
    assert read["security"] == [{"bearer": []}] and set(read["responses"]) == {"200", "400", "401", "403", "404",
                                                                               "413", "503"}
    assert set(document["paths"]["/push"]["post"]["responses"]) == {"200", "202", "400", "401", "403", "404", "413",
                                                                    "503"}
    assert document["paths"]["/health"]["get"]["security"] == []
    assert requests.get(server + "/health", timeout=30).status_code == 200
