"""Alerts: one per incident and one recovery, delivered to a local webhook and a Slack-style webhook."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pandas as pd
import pytest

import feature_platform as fp
from feature_platform.definitions import build_definitions
from feature_platform.defs.alerts import evaluate, send
from feature_platform.defs.resources import resources_for
from feature_platform.demo.generator import generate_day
from feature_platform.demo.stream import SessionSimulator
from feature_platform_tests.helpers import write_sessions


@pytest.fixture
def webhook():
    """A local HTTP server that records every JSON body POSTed to it, by path."""
    received: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()


@pytest.fixture
def platform(embedded_settings, webhook):
    url, _ = webhook
    settings = embedded_settings.with_(alert_webhook_url=f"{url}/hook", alert_slack_webhook_url=f"{url}/slack")
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    write_sessions(settings.sessions_path, pd.concat([generate_day(yesterday - timedelta(days=i), 40) for i in range(9)]))
    p = fp.FeaturePlatform(settings)
    p.materialize("user_activity", yesterday)
    return p


def test_one_alert_per_incident_and_one_recovery(platform, webhook):
    _, received = webhook
    runtime, instance, settings = platform.runtime, platform.instance(), platform.settings
    start = datetime.now(timezone.utc) - timedelta(minutes=20)  # the clock is ours; events are real
    platform.push("user_realtime_events", SessionSimulator().events(10, now=start), direct=True)
    platform.ingest_pending("user_realtime_events")  # the sensor drains the direct log

    alerts, cursor = evaluate(runtime, instance, None, now=start + timedelta(minutes=1))
    assert alerts == []  # everything fresh
    stale_at = start + timedelta(minutes=6)  # the producer stopped: user_realtime passes its 5-minute SLA
    alerts, cursor = evaluate(runtime, instance, cursor, now=stale_at)
    assert [(a.incident, a.state) for a in alerts] == [("stale:user_realtime", "open")]
    send(alerts, settings)
    for minute in (7, 8, 9):  # still stale: no repeat
        repeat, cursor = evaluate(runtime, instance, cursor, now=start + timedelta(minutes=minute))
        assert repeat == []
    resumed = datetime.now(timezone.utc)
    platform.push("user_realtime_events", SessionSimulator().events(10, now=resumed), direct=True)
    platform.ingest_pending("user_realtime_events")  # the sensor drains the direct log
    alerts, cursor = evaluate(runtime, instance, cursor, now=resumed + timedelta(seconds=5))
    assert [(a.incident, a.state) for a in alerts] == [("stale:user_realtime", "recovered")]
    send(alerts, settings)

    hooks = [body for path, body in received if path == "/hook"]
    slack = [body for path, body in received if path == "/slack"]
    assert [(h["incident"], h["state"], h["view"]) for h in hooks] == [
        ("stale:user_realtime", "open", "user_realtime"), ("stale:user_realtime", "recovered", "user_realtime")]
    assert "user_realtime is stale" in hooks[0]["summary"]
    assert len(slack) == 2 and slack[0]["text"].startswith(":rotating_light:") and "recovered" in slack[1]["text"]


def test_failed_run_and_failed_check_alert_once(platform, monkeypatch):
    runtime, instance = platform.runtime, platform.instance()
    _, cursor = evaluate(runtime, instance, None)
    from feature_platform import pipeline

    monkeypatch.setattr(pipeline, "validate", lambda spec, rows: pd.DataFrame(
        {"column": ["sessions_7d"], "check": ["forced"], "index": [0], "failure_case": [1],
         "schema_context": ["Column"], "check_number": [0]}))
    day = datetime.now(timezone.utc).date() - timedelta(days=2)
    with pytest.raises(fp.ValidationFailedError):
        platform.materialize("user_activity", day)
    alerts, cursor = evaluate(runtime, instance, cursor)
    kinds = sorted(a.incident.split(":")[0] for a in alerts if a.state == "open")
    assert kinds.count("run") == 1 and "check" in kinds
    again, _ = evaluate(runtime, instance, cursor)
    assert [a for a in again if a.state == "open"] == []


def test_alert_sensor_is_wired_and_keeps_its_cursor(embedded_settings):
    defs = build_definitions(embedded_settings)
    sensor = defs.get_sensor_def("feature_platform_alerts")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources_for(embedded_settings))
        result = sensor(context)
        assert isinstance(result, dg.SkipReason)
        assert json.loads(context.cursor)["open"] == {}  # nothing materialized: missing is not an incident


def test_unreachable_webhook_does_not_raise(embedded_settings):
    from feature_platform.defs.alerts import Alert

    class Recorder:
        def __init__(self):
            self.lines = []

        def error(self, msg, *args):
            self.lines.append(msg % args if args else msg)

        info = warning = error

    logger = Recorder()
    settings = embedded_settings.with_(alert_webhook_url="http://127.0.0.1:9/none")
    send([Alert("stale:x", "open", "x", "x is stale", date.today().isoformat())], settings, logger)
    assert any("x is stale" in line for line in logger.lines)
    assert any(line.startswith("alert webhook http://127.0.0.1:9/*** failed") for line in logger.lines)  # path: a token
