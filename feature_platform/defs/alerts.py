"""Alerts: one message when an incident opens (a view goes stale, a check fails, a run fails) and
one when it recovers, never one per tick. Sinks: the Dagster log always, plus a generic JSON webhook
and a Slack-compatible webhook when configured (FEATURE_PLATFORM_ALERT_*_WEBHOOK_URL).

The sensor `feature_platform_alerts` evaluates them; incidents are read from the Dagster instance."""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import dagster as dg

from feature_platform.config import Settings
from feature_platform.defs.resources import FeaturePlatformResource
from feature_platform.freshness import STALE, view_freshness
from feature_platform.redact import redact, url_origin
from feature_platform.runtime import Runtime
from feature_platform.specs import all_specs

log = logging.getLogger(__name__)


@dataclass
class Alert:
    incident: str  # stable key, e.g. "stale:user_realtime"
    state: str  # "open" or "recovered"
    view: str
    summary: str
    at: str

    def text(self) -> str:
        icon = ":rotating_light:" if self.state == "open" else ":white_check_mark:"
        return f"{icon} [feature_platform] {self.summary}"


def current_incidents(runtime: Runtime, instance: dg.DagsterInstance, now: datetime) -> dict[str, tuple[str, str]]:
    """incident key -> (view, description) for everything wrong right now."""
    incidents: dict[str, tuple[str, str]] = {}
    for spec in all_specs().values():
        f = view_freshness(runtime, spec, now)
        if f.status == STALE:
            incidents[f"stale:{spec.name}"] = (spec.name, f"{spec.name} is stale: newest data is {f.age} old "
                                                          f"(SLA {spec.freshness_sla})")
        keys = [dg.AssetCheckKey(dg.AssetKey(spec.name), name) for name in ("pandera_schema", "online_offline_skew")]
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        for key, record in latest.items():
            evaluation = record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event else None
            # A warning (e.g. a skew check skipped for want of rows to compare) opens no incident.
            if (evaluation is not None and getattr(evaluation, "passed", True) is False
                    and getattr(evaluation, "severity", None) != dg.AssetCheckSeverity.WARN):
                incidents[f"check:{spec.name}:{key.name}"] = (spec.name, f"check {key.name} failed on {spec.name}"
                                                              + (f" (partition {evaluation.partition})" if evaluation.partition else ""))
    return incidents


def failed_runs_since(instance: dg.DagsterInstance, after: float) -> list[Alert]:
    """Run failures are one-shot incidents: alerted once, recovered by the next success."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], updated_after=
                                                   datetime.fromtimestamp(after, timezone.utc)), limit=50)
    alerts = []
    for run in runs:
        partition = run.tags.get("dagster/partition", "")
        assets = ",".join(k.to_user_string() for k in sorted(run.asset_selection or [], key=str))
        alerts.append(Alert(f"run:{run.run_id}", "open", assets,
                            f"run {run.run_id[:8]} materializing {assets or run.job_name} failed" + (f" (partition {partition})" if partition else ""),
                            datetime.now(timezone.utc).isoformat()))
    return alerts


def evaluate(runtime: Runtime, instance: dg.DagsterInstance, cursor: str | None, now: datetime | None = None
             ) -> tuple[list[Alert], str]:
    """The alerts to send this tick, and the new cursor (open incidents + run-failure watermark)."""
    now = now or datetime.now(timezone.utc)
    state = json.loads(cursor) if cursor else {"open": {}, "runs_after": now.timestamp()}
    current = current_incidents(runtime, instance, now)
    alerts = [Alert(k, "open", view, text, now.isoformat()) for k, (view, text) in current.items() if k not in state["open"]]
    alerts += [Alert(k, "recovered", view, f"{view} recovered (was: {text})", now.isoformat())
               for k, (view, text) in state["open"].items() if k not in current]
    alerts += failed_runs_since(instance, state["runs_after"])
    state = {"open": {k: list(v) for k, v in current.items()}, "runs_after": now.timestamp()}
    return alerts, json.dumps(state)


def send(alerts: list[Alert], settings: Settings, logger=log) -> None:
    for alert in alerts:
        (logger.error if alert.state == "open" else logger.info)(alert.text())
        if settings.alert_webhook_url:
            _post(settings.alert_webhook_url, asdict(alert), logger)
        if settings.alert_slack_webhook_url:
            _post(settings.alert_slack_webhook_url, {"text": alert.text()}, logger)


def _post(url: str, payload: dict, logger) -> None:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
    except OSError as exc:  # an unreachable sink must not stop the other alerts
        # The webhook's path is its token (Slack: /services/T…/B…/secret): log only where it points.
        logger.warning("alert webhook %s failed: %s", url_origin(url), redact(str(exc), [url]))


@dg.sensor(
    name="feature_platform_alerts",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (Dagster log, webhook, Slack webhook) when a view goes stale, a check fails or a run "
    "fails, and when it recovers.",
)
def feature_platform_alerts(context: dg.SensorEvaluationContext, platform: FeaturePlatformResource):
    alerts, cursor = evaluate(platform.runtime(), context.instance, context.cursor)
    send(alerts, platform.settings(), context.log)
    context.update_cursor(cursor)
    return dg.SkipReason(f"{len(alerts)} alert(s) sent" if alerts else "no change")
