"""The process that executes each Dagster run, and whether it is still alive.

A run whose process is killed outright (SIGKILL, the OOM killer, a reboot, `dagster dev` killed) records no
end: Dagster keeps it STARTED, and the QueuedRunCoordinator counts it against `max_concurrent_runs` for ever,
so two of them stop every later backfill. A run's worker is known
- for the platform's in-process runs, from the tags it gives them (machine, pid and the process's start time);
- for runs launched on a code server of this machine (`dagster dev`'s, reached through a Unix socket), from the
  tag `WorkerCheckingRunLauncher` adds when it launches them (this machine) and the pid in Dagster's own
  "Started process for run" event, which the worker logs before the run starts.
Then Dagster's run monitoring (`run_monitoring:` in dagster.yaml, performed by the daemon) asks the instance's
run launcher, `WorkerCheckingRunLauncher` (Dagster's default launcher plus this check), about each STARTED
run and marks one whose worker is gone as failed; the platform does the same before each run it starts itself
(`fail_dead_runs`), so no daemon is needed for its own runs. A worker on another machine or container cannot be
checked from here and is never judged dead (Dagster's code server reports the runs it launched whose process
died; the run monitoring's `max_runtime_seconds` can bound the rest).
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

import dagster as dg
import psutil

from feature_platform.compat.dagster_internals import CheckRunHealthResult, LaunchRunContext, WorkerStatus

MACHINE_TAG = "feature_platform/worker_machine"
PID_TAG = "feature_platform/worker_pid"
STARTED_TAG = "feature_platform/worker_started"  # the process's start time, seconds since the epoch
_STARTED_PROCESS = "Started process for run"  # Dagster's engine event, logged by a launched run's worker


@lru_cache(maxsize=1)
def machine() -> str:
    """This machine and process namespace: the host name, the kernel's boot id (a reboot ends every process) and
    the pid namespace (containers sharing a host name do not see each other's pids)."""
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            parts.append(boot.read().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:  # not Linux: the host name alone
        pass
    return "/".join(parts)


def worker_tags() -> dict[str, str]:
    """Run tags naming this process as the run's worker (for a run it executes itself)."""
    pid = os.getpid()
    return {MACHINE_TAG: machine(), PID_TAG: str(pid), STARTED_TAG: f"{psutil.Process(pid).create_time():.3f}"}


def _worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[int, float] | None:
    """The pid of `run`'s worker on this machine and the latest time it may have started, if known."""
    tags = run.tags
    if tags.get(MACHINE_TAG) != machine():
        return None
    if PID_TAG in tags and STARTED_TAG in tags:
        return int(tags[PID_TAG]), float(tags[STARTED_TAG])
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        if entry.message.startswith(_STARTED_PROCESS) and data is not None and "pid" in data.metadata:
            return int(data.metadata["pid"].value), entry.timestamp  # the process logged it once started
    return None


def worker_state(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """`alive` or `dead` when `run`'s worker is a known process of this machine, else `unknown` (not known yet,
    or on another machine or container)."""
    try:
        worker = _worker(instance, run)
    except ValueError:  # a malformed tag or event: not ours to judge
        return "unknown"
    if worker is None:
        return "unknown"
    pid, started_by = worker
    try:
        process = psutil.Process(pid)
        # A pid reused by a process started after the worker is not the worker.
        same = process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= started_by + 1
    except psutil.NoSuchProcess:
        same = False
    except psutil.Error:  # e.g. access denied: it exists, and it is not ours to judge
        return "unknown"
    return "alive" if same else "dead"


def dead_worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Why `run`'s worker is known to be gone, or None (alive, or not checkable from here)."""
    if worker_state(instance, run) != "dead":
        return None
    pid = _worker(instance, run)[0]
    return f"its worker process {pid} on this machine has ended without recording the run's end"


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark every STARTED run whose worker is known to be gone as failed; returns their run ids."""
    failed = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        reason = dead_worker(instance, record.dagster_run)
        if reason is None:
            continue
        current = instance.get_run_by_id(record.dagster_run.run_id)  # another process may have done it meanwhile
        if current is not None and current.status == dg.DagsterRunStatus.STARTED:
            instance.report_run_failed(current, f"Run marked as failed: {reason} (killed?).")
            failed.append(current.run_id)
    return failed


class WorkerCheckingRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default run launcher, whose runs' workers run monitoring can check."""

    def launch_run(self, context: LaunchRunContext) -> None:
        # A code server reached through a Unix socket (`dagster dev`'s) runs the worker on this machine: record
        # it first, so the worker's pid (Dagster's "Started process for run" event) can be checked from here. A
        # code server reached over the network (docker-compose's) may be anywhere: its runs are not judged.
        origin = context.dagster_run.remote_job_origin
        if context.workspace is not None and origin is not None:
            location = context.workspace.get_code_location(origin.repository_origin.code_location_origin.location_name)
            if getattr(getattr(location, "client", None), "socket", None):
                self._instance.add_run_tags(context.dagster_run.run_id, {MACHINE_TAG: machine()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        reason = dead_worker(self._instance, run)
        if reason is not None:
            return CheckRunHealthResult(WorkerStatus.FAILED, reason)
        # Alive, or not checkable from here: run monitoring must then leave it alone.
        return CheckRunHealthResult(WorkerStatus.RUNNING)


__all__ = ["WorkerCheckingRunLauncher", "dead_worker", "fail_dead_runs", "worker_state", "worker_tags"]
