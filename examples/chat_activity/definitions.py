"""What Dagster loads for this repository (`dagster dev -w examples/chat_activity/workspace.yaml`): its sources,
feature views, checks, sensors and training sets, merged (`dg.Definitions.merge`) with this example's own
Dagster definitions, as a team merges the platform's with its pipelines.

The example's own part stands in for the pipeline that delivers a team's events: just after midnight UTC,
`demo_sessions_daily` appends yesterday's generated sessions to the demo log (only the generated log, never a
log FEATURE_PLATFORM_SESSIONS_PATH points at). The `observe_sources` sensor then records the new day and
`user_activity`'s automation condition materializes its partition: the loop a real source drives.
"""

from datetime import date, timedelta
from pathlib import Path

import dagster as dg

import feature_platform
from feature_platform.config import Settings


@dg.op(config_schema={"day": str}, description="Appends one day of generated sessions to the demo log.")
def append_demo_sessions(context: dg.OpExecutionContext) -> None:
    from feature_platform.demo.generator import generate_sessions

    settings = Settings.from_env()
    if not settings.uses_generated_sessions:
        context.log.info(f"the sessions log is yours ({settings.sessions_path}): nothing generated")
        return
    day = date.fromisoformat(context.op_config["day"])
    (path,) = generate_sessions(settings, day, day)
    context.log.info(f"demo sessions of {day} written to {path}")


@dg.job(description="Appends one day of generated sessions to the demo log (the example's stand-in for a pipeline).")
def demo_sessions_job():
    append_demo_sessions()


@dg.schedule(job=demo_sessions_job, cron_schedule="5 0 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def demo_sessions_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Yesterday's sessions (UTC), once: the run key is the day."""
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=day, run_config={"ops": {"append_demo_sessions": {"config": {"day": day}}}})


defs = dg.Definitions.merge(
    feature_platform.build_definitions(repo=Path(__file__).parent),
    dg.Definitions(jobs=[demo_sessions_job], schedules=[demo_sessions_daily]),
)
