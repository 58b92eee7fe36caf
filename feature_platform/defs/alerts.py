"""The alert sensor: stale views, failed checks and failed runs, one message per incident and recovery."""

import dagster as dg

from feature_platform.alerts import evaluate, send
from feature_platform.defs.resources import FeaturePlatformResource


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
