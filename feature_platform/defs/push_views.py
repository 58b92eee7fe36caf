"""Pushed feature view -> Dagster: the push source, the view's asset (one dynamic partition per
batch) and the sensor that turns landed batches into runs (run_key = batch id)."""

import warnings
from datetime import datetime, timedelta, timezone

import dagster as dg

from feature_platform.defs.metadata import view_asset_args
from feature_platform.defs.resources import FeaturePlatformResource
from feature_platform.defs.run_workers import worker_state
from feature_platform.ingest import DIRECT_PREFIX, drain_direct_log, ingest_batch, transport_for
from feature_platform.spec import FeatureViewSpec


def batch_partitions(spec: FeatureViewSpec) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{spec.push_source}_batches")


def build_push_view_defs(spec: FeatureViewSpec, settings) -> tuple[list, list]:
    """(assets, sensors) of one pushed view."""
    partitions = batch_partitions(spec)
    source = dg.AssetSpec(
        key=spec.push_source,
        group_name="sources",
        kinds={"push"},
        owners=[f"team:{spec.owner}"],
        description=f"Events pushed by producers for {spec.name} (landing directory of batches).",
    )

    @dg.asset(partitions_def=partitions, deps=[source.key], **view_asset_args(spec, settings, push_source=spec.push_source))
    def _pushed_view(context: dg.AssetExecutionContext, platform: FeaturePlatformResource) -> dg.MaterializeResult:
        key = context.partition_key
        if key.startswith(DIRECT_PREFIX):  # entries of the low-latency path's log, drained in bulk
            result = drain_direct_log(platform.runtime(), spec, label=key)
        else:
            result = ingest_batch(platform.runtime(), spec, key)
        if result.malformed:
            context.log.warning("batch %s is malformed and was dead-lettered: %s", result.batch_id, result.malformed)
        metadata = {
            "batch_id": result.batch_id,
            "rows_received": result.received,
            "rows_accepted": result.accepted,
            "rows_rejected": result.rejected,
            "duplicates_dropped": result.duplicates,
            "rows_written_online": result.written_online,
            "duration_sec": round(result.duration_sec, 3),
            "malformed": result.malformed or "",
        }
        if result.lag_sec is not None:
            metadata["ingestion_lag_sec"] = round(result.lag_sec, 3)
        return dg.MaterializeResult(metadata=metadata)

    @dg.sensor(
        name=f"{spec.push_source}_sensor",
        target=[_pushed_view],
        minimum_interval_seconds=5,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Turns batches landed for {spec.push_source} into runs of {spec.name}.",
    )
    def _sensor(context: dg.SensorEvaluationContext, platform: FeaturePlatformResource):
        runtime = platform.runtime()
        pending = transport_for(runtime, spec).pending()
        logged = transport_for(runtime, spec, direct_log=True).pending()
        if logged:  # one run drains everything the low-latency path logged so far
            pending = [*pending, f"{DIRECT_PREFIX}{logged[-1]}"]
        known = set(context.instance.get_dynamic_partitions(partitions.name))
        requests = []
        for batch_id in pending:
            # A batch still pending after a finished run was not acknowledged (the run crashed or
            # failed): ask again under a new run key, so delivery is at least once.
            attempt = _finished_attempts(context.instance, spec.name, batch_id) if batch_id in known else 0
            run_key = batch_id if attempt == 0 else f"{batch_id}#retry{attempt}"
            requests.append(dg.RunRequest(run_key=run_key, partition_key=batch_id))
        if not requests:
            return dg.SkipReason(f"no pending batches at {datetime.now(timezone.utc):%H:%M:%S}")
        new = [b for b in pending if b not in known]
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[partitions.build_add_request(new)] if new else [],
        )

    return [source, _pushed_view], [_sensor]


# A run whose worker was killed (OOM, SIGKILL, lost node) records no end. Run monitoring (dagster.yaml) and the
# platform mark it failed once its worker is known to be gone (defs/run_workers.py), and so does this sensor at
# once. A run whose worker cannot be checked from here (another machine or container, or no worker recorded)
# is presumed dead once it has been started this long: a push run takes seconds, and the writes are
# idempotent, so a run that was merely slow only does its work twice.
RUN_PRESUMED_DEAD_AFTER = timedelta(minutes=10)


def _finished_attempts(instance: dg.DagsterInstance, view: str, batch_id: str) -> int:
    """How many runs for this batch have finished (or died); a queued or running one means 'do not ask
    again' (0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/partition": batch_id}))
    oldest_alive = datetime.now(timezone.utc).timestamp() - RUN_PRESUMED_DEAD_AFTER.total_seconds()

    def running(record) -> bool:
        if record.dagster_run.is_finished:
            return False
        state = worker_state(instance, record.dagster_run)
        if state != "unknown":
            return state == "alive"
        return not (record.start_time is not None and record.start_time <= oldest_alive)

    if any(running(r) for r in records):
        return 0
    return len(records)
