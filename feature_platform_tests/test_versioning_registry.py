"""Concurrent applies: no lost update. Against the real PostgreSQL SQL registry (separate processes) and
the embedded file registry (threads), two applies start together and hold the registry lock long enough
to overlap; both changes and both history entries must survive, and two conflicting changes to one view
must not silently undo each other."""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import replace
from datetime import timedelta

from chat_activity.user_activity_v3 import SPEC as V3
from chat_activity.user_realtime import SPEC as REALTIME

from feature_platform.config import Settings
from feature_platform.errors import BreakingChangeError
from feature_platform.runtime import Runtime
from feature_platform.spec import Field
from feature_platform.versioning import workflow

HOLD_SEC = 0.5  # each apply sleeps this long inside the lock, after planning, so the two overlap
REALTIME_2H = replace(REALTIME, ttl=timedelta(hours=2))

CHANGES = {
    # phase 1: different views, both additive
    "deprecate_v3": [replace(V3, deprecated="testing concurrent applies")],
    "longer_realtime_ttl": [REALTIME_2H],
    # phase 2 (after phase 1): the same view, each adding its own field
    "add_a": [replace(REALTIME_2H, fields=(*REALTIME.fields, Field("extra_a", "int64", "a", ge=0)))],
    "add_b": [replace(REALTIME_2H, fields=(*REALTIME.fields, Field("extra_b", "int64", "b", ge=0)))],
}


def apply_change(settings: Settings, change: str) -> tuple[str, str, str]:
    """Apply only the views of `change` (other registered views are left as they are)."""
    try:
        plan = workflow.apply(Runtime(settings), specs=CHANGES[change], services=[], training_sets=[],
                              user=f"worker-{change}", on_planned=lambda _plan: time.sleep(HOLD_SEC))
        return change, "applied", ",".join(v.name for v in plan.to_apply)
    except BreakingChangeError as exc:
        return change, "refused", str(exc)


def _process_worker(env: dict, changes: list[str], barrier, results) -> None:
    settings = Settings.from_env(env)
    for change in changes:  # one change per phase; all workers start each phase together
        barrier.wait(timeout=120)
        results.put(apply_change(settings, change))


def run_concurrently(settings: Settings, phases: list[list[str]], processes: bool) -> list[dict[str, tuple[str, str]]]:
    """Worker i applies change i of each phase; the workers start every phase together (a barrier)."""
    per_worker = [list(changes) for changes in zip(*phases)]
    results: list = []
    if processes:
        ctx = multiprocessing.get_context("spawn")  # separate processes, each with its own registry client
        barrier, queue = ctx.Barrier(len(per_worker)), ctx.Queue()
        workers = [ctx.Process(target=_process_worker, args=(settings.as_env(), changes, barrier, queue))
                   for changes in per_worker]
        for w in workers:
            w.start()
        results = [queue.get(timeout=300) for _ in range(len(phases) * len(workers))]
        for w in workers:
            w.join(timeout=60)
            assert w.exitcode == 0
    else:
        barrier = threading.Barrier(len(per_worker))

        def run(changes):
            for change in changes:
                barrier.wait(timeout=60)
                results.append(apply_change(settings, change))

        threads = [threading.Thread(target=run, args=(changes,)) for changes in per_worker]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    by_change = {change: (outcome, detail) for change, outcome, detail in results}
    return [{change: by_change[change] for change in phase} for phase in phases]


def test_concurrent_applies_lose_no_update(profile, profile_settings):
    settings = profile_settings
    workflow.apply(Runtime(settings), user="setup")
    processes = profile == "services"

    started = time.monotonic()
    outcome, second = run_concurrently(settings, [["deprecate_v3", "longer_realtime_ttl"], ["add_a", "add_b"]],
                                       processes)
    assert outcome == {"deprecate_v3": ("applied", "user_activity_v3"),
                       "longer_realtime_ttl": ("applied", "user_realtime")}
    store = Runtime(settings).feast
    assert store.get_feature_view("user_activity_v3").tags["deprecated"] == "true"
    assert store.get_feature_view("user_realtime").ttl == timedelta(hours=2)
    history = workflow.history(Runtime(settings))
    assert {"worker-deprecate_v3", "worker-longer_realtime_ttl"} <= set(history["user"])
    concurrent = history[history["object"].isin(["user_activity_v3", "user_realtime"])
                         & history["user"].isin(["worker-deprecate_v3", "worker-longer_realtime_ttl"])]
    assert sorted(concurrent["object"]) == ["user_activity_v3", "user_realtime"]
    # serialized by the lock: the second began only after the first had finished holding it
    assert concurrent["at"].diff().iloc[-1] >= timedelta(seconds=HOLD_SEC * 0.9)
    assert time.monotonic() - started >= 4 * HOLD_SEC

    outcome = second  # phase 2 began once both applies of phase 1 had returned
    (winner,) = [c for c, (result, _) in outcome.items() if result == "applied"]
    (loser,) = [c for c, (result, _) in outcome.items() if result == "refused"]
    won_field, lost_field = f"extra_{winner[-1]}", f"extra_{loser[-1]}"
    # the loser planned against the winner's registry: applying its code would drop the winner's field
    assert f"{won_field} int64 [field removed]" in outcome[loser][1]
    fields = [f.name for f in Runtime(settings).feast.get_feature_view("user_realtime").features]
    assert won_field in fields and lost_field not in fields
    history = workflow.history(Runtime(settings), "user_realtime")
    assert list(history["user"])[-1] == f"worker-{winner}" and f"worker-{loser}" not in set(history["user"])
