"""Runs whose process is SIGKILLed mid-materialization, on both profiles: Dagster would keep them STARTED for
ever, holding the run queue's places (`max_concurrent_runs` of the shipped dagster.yaml files), so that two of
them stop every later backfill.

- A run the platform started itself (the CLI): the platform's next run marks it failed.
- Runs of both kinds, a backfill's run from the UI (`dagster dev` killed with its run worker) and a CLI run,
  under the shipped dagster.yaml: the next `dagster dev`'s run monitoring marks them failed and the next
  backfill launched from the UI (GraphQL, as the UI does) runs to success.

A run is held mid-way deterministically: the test holds the registry lock, which a run takes when it first
syncs online (after its offline write); the run's process waits there until it is killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from feature_platform.backends import registry_log
from feature_platform.config import Settings
from feature_platform.defs.run_workers import PID_TAG, worker_state
from feature_platform.demo.generator import generate_day
from feature_platform.platform import FeaturePlatform
from feature_platform_tests.browser import dagster_dev, dagster_dev_process, graphql
from feature_platform_tests.helpers import settings_of, write_sessions

ROOT = Path(__file__).resolve().parents[1]
FIRST = date(2026, 3, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(6)]
WAIT = 600  # seconds: runs start in subprocesses that load the code location, slow on a busy machine


def prepare(settings: Settings) -> None:
    raw = pd.concat([generate_day(FIRST + timedelta(days=i), 100, seed=3) for i in range(-8, len(DAYS))],
                    ignore_index=True)
    write_sessions(settings.sessions_path, raw)
    FeaturePlatform(settings).apply()  # the registry exists, as in a deployment


@contextmanager
def registry_held(settings: Settings) -> Iterator[None]:
    """The registry lock, held by a thread of this process: a run waits for it at its first online sync."""
    taken, release = threading.Event(), threading.Event()

    def hold():
        with registry_log(settings).lock():
            taken.set()
            release.wait()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(60)
    try:
        yield
    finally:
        release.set()
        holder.join(60)


def started_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])))


def wait_for(condition, what: str, proc=None, timeout: float = WAIT):
    """Wait until `condition()` is truthy (and return it), failing early if `proc` exits (a wait, not a timing
    assertion)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached: {what}")
        time.sleep(0.2)
    return value


def cli_materialize(env: dict[str, str], day: date, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "feature_platform.cli", "materialize", "--view", "user_activity",
                             "--start", day.isoformat(), "--end", day.isoformat()], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cli_run_mid_way(env: dict[str, str], day: date, cwd: Path, instance: dg.DagsterInstance
                    ) -> tuple[subprocess.Popen, str]:
    """A CLI materialization of `day` whose run is STARTED (and held: the caller holds the registry lock)."""
    before = {r.run_id for r in started_runs(instance)}
    proc = cli_materialize(env, day, cwd)
    run = wait_for(lambda: [r for r in started_runs(instance) if r.run_id not in before],
                   f"a STARTED run of the CLI's materialization of {day}", proc)[0]
    return proc, run.run_id


def sigkill(proc: subprocess.Popen) -> None:
    proc.kill()
    assert proc.wait(60) == -signal.SIGKILL


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FEATURE_PLATFORM_", "DAGSTER_HOME"))}


def test_a_killed_cli_run_is_marked_failed_by_the_next_run(tmp_path, profile):
    with settings_of(profile, tmp_path) as settings:
        prepare(settings)
        env = base_env() | settings.as_env() | {"FEATURE_PLATFORM_SESSIONS_PATH": str(settings.sessions_path)}
        platform = FeaturePlatform(settings)
        with registry_held(settings):
            proc, killed = cli_run_mid_way(env, DAYS[0], tmp_path, platform.instance())
            sigkill(proc)
        run = platform.instance().get_run_by_id(killed)
        assert run.status == dg.DagsterRunStatus.STARTED  # nothing else will ever mark it

        platform.materialize("user_activity", DAYS[1], DAYS[1])
        run = platform.instance().get_run_by_id(killed)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert worker_state(platform.instance(), run) == "dead"
        failure = platform.instance().all_logs(killed, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert f"worker process {run.tags[PID_TAG]}" in failure[-1].message
        assert started_runs(platform.instance()) == []


LAUNCH = """mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL = "query ($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"


def executing(instance: dg.DagsterInstance, backfill: str) -> str | None:
    """The id of `backfill`'s run once it executes its step."""
    for run in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill})):
        if run.status == dg.DagsterRunStatus.STARTED and instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.STEP_START):
            return run.run_id
    return None


def launch_backfill(url: str, days: list[date]) -> str:
    """A backfill of `user_activity`'s partitions `days`, launched as the UI's launch dialog does."""
    params = {"assetSelection": [{"path": ["user_activity"]}], "partitionNames": [d.isoformat() for d in days]}
    result = graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def backfill_status(url: str, backfill_id: str) -> str:
    return graphql(url, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]["status"]


def test_killed_runs_do_not_block_the_next_backfill(tmp_path, profile, monkeypatch):
    """Two runs killed mid-way hold both places of the shipped dagster.yaml's run queue (max_concurrent_runs: 2):
    a backfill's run from the UI (killed with `dagster dev`, as by a reboot) and a CLI run. The next `dagster dev`
    marks them failed (run monitoring), and a backfill launched from the UI then succeeds."""
    shipped = ROOT / ("dagster.yaml" if profile == "embedded" else "deploy/dagster.services.yaml")
    with settings_of(profile, tmp_path) as settings:
        # The shipped file is the instance of every process here; the embedded one's storage is relative to the
        # working directory (.feature_platform/dagster/storage, FEATURE_PLATFORM_HOME's default).
        settings = settings.with_(home=tmp_path / ".feature_platform")
        prepare(settings)
        dagster_home = tmp_path / "dagster_home"
        dagster_home.mkdir()
        shutil.copy(shipped, dagster_home / "dagster.yaml")
        if profile == "services":
            from feature_platform.stores.postgres import ensure_database

            ensure_database(settings, settings.dagster_pg_db)
        env = base_env() | settings.as_env() | {"FEATURE_PLATFORM_SESSIONS_PATH": str(settings.sessions_path),
                                                "DAGSTER_HOME": str(dagster_home)}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        instance = dg.DagsterInstance.get()
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 2

        # 1. A backfill's run from the UI and a CLI run, both held mid-way; then the CLI is killed, and `dagster dev`
        # with everything it started.
        with dagster_dev_process(ROOT / "workspace.yaml", env, tmp_path, tmp_path / "dev1.log") as (dev, url):
            with registry_held(settings):
                backfill = launch_backfill(url, [DAYS[0]])
                ui_run = wait_for(lambda: executing(instance, backfill), f"backfill {backfill}'s run executing")
                proc, cli_run = cli_run_mid_way(env, DAYS[1], tmp_path, instance)
                sigkill(proc)
                os.killpg(dev.pid, signal.SIGKILL)
                dev.wait(60)
        # They hold the queue's two places for ever (with runs of the freshness schedule and sensor that `dagster
        # dev` may have started).
        assert {ui_run, cli_run} <= {r.run_id for r in started_runs(instance)}

        # 3. The next `dagster dev`: the dead runs are marked failed, and the next backfill runs.
        with dagster_dev(ROOT / "workspace.yaml", env, tmp_path, tmp_path / "dev2.log") as url:
            backfill = launch_backfill(url, DAYS[2:4])
            status = wait_for(lambda: (s := backfill_status(url, backfill)) not in ("REQUESTED",) and s,
                              f"the end of backfill {backfill}")
            assert status == "COMPLETED_SUCCESS", (tmp_path / "dev2.log").read_text()[-3000:]
        for run_id in (ui_run, cli_run):
            run = instance.get_run_by_id(run_id)
            assert run.status == dg.DagsterRunStatus.FAILURE
            assert worker_state(instance, run) == "dead"
        platform = FeaturePlatform(settings)
        assert set(DAYS[2:4]) <= set(platform.runtime.offline.partitions(platform.view("user_activity")))
