"""In-process Dagster runs for the Python API (defs/runs.py), whose caller gets back the exception the failed
step raised.

The event log holds only an error's text; the caller of an in-process run is owed the package's own error,
with its data (a `ValidationFailedError`'s failing rows and quarantine path). A failure hook on every asset
keeps the step's exception by run id; `run` raises it, or a `MaterializationError` caused by it.
"""

from __future__ import annotations

import dagster as dg

from feature_platform.config import Settings
from feature_platform.errors import (
    AggregationOverflowError,
    MaterializationError,
    SourceDataError,
    ValidationFailedError,
)

# Data errors a run raises to the caller unchanged (other failures become MaterializationError).
RAISED_AS_IS = (ValidationFailedError, SourceDataError, AggregationOverflowError)
_step_errors: dict[str, BaseException] = {}  # run id -> what its first failed step raised


@dg.failure_hook(name="feature_platform_step_error")
def _keep_step_error(context: dg.HookContext) -> None:
    if context.op_exception is not None:
        _step_errors.setdefault(context.run_id, context.op_exception)


def assets_of(settings: Settings) -> list:
    """The deployment's assets (and checks), each with the hook that keeps a failed step's exception."""
    from feature_platform.definitions import build_assets

    return [a.with_hooks({_keep_step_error}) if isinstance(a, dg.AssetsDefinition) else a
            for a in build_assets(settings)]


def run(settings: Settings, assets: list, selection: list[dg.AssetKey], *, instance: dg.DagsterInstance, label: str,
        partition_key: str | None = None, partition_range: tuple[str, str] | None = None,
        log_level: str = "WARNING") -> None:
    """One in-process run of `selection` for a partition or a range of partitions (as a backfill's run has it),
    recorded in `instance`; `assets` are `assets_of(settings)`. Raises what the failed step raised (`RAISED_AS_IS`), else `MaterializationError`."""
    from feature_platform.compat.dagster_internals import partition_range_tags
    from feature_platform.defs.resources import resources_for
    from feature_platform.defs.run_workers import fail_dead_runs, worker_tags

    # This process is the run's worker; a run of a killed one (still STARTED, holding a place in the run
    # queue) is marked failed first, with or without Dagster's daemon.
    tags = worker_tags()
    fail_dead_runs(instance)
    if partition_range is not None:
        tags |= partition_range_tags(*partition_range)
    result = dg.materialize(
        assets, selection=selection, partition_key=partition_key, instance=instance,
        resources=resources_for(settings), raise_on_error=False, tags=tags,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    error = _step_errors.pop(result.run_id, None)
    if result.success:
        return
    what = f"{label!r} partition {partition_key or '..'.join(partition_range or ())}" \
        if partition_key or partition_range else repr(label)
    raise failure(what, error, result)


def failure(what: str, error: BaseException | None, result) -> Exception:
    """The error of a failed run: the step's own exception when it is one of ours to raise as is (a
    `dg.Failure` raised from one counts as it), else a `MaterializationError` saying what failed."""
    cause = error.__cause__ if isinstance(error, dg.Failure) else None
    for candidate in (cause, error):
        if isinstance(candidate, RAISED_AS_IS):
            return candidate
    if error is not None:
        # The step error's notes (e.g. which days of a range were kept) are part of what failed: in the message,
        # on lines of their own, as Dagster's error text has them.
        lines = [f"materializing {what} failed: {type(error).__name__}: {error}", *getattr(error, "__notes__", ())]
        err = MaterializationError("\n".join(lines))
        err.__cause__ = error
        return err
    for event in result.all_events:  # no step raised (e.g. a blocking check failed): the event log's text
        if event.event_type_value == "STEP_FAILURE" and event.step_failure_data.error is not None:
            info = event.step_failure_data.error
            return MaterializationError(f"materializing {what} failed: {info.cls_name}: {info.message}".strip())
    return MaterializationError(f"materializing {what} failed (run {result.run_id})")
