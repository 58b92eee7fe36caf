"""The embedded profile's Dagster storage (`compat/dagster_sqlite.py`): every event of a range run is stored,
each event's (or batch's) writes land in every shard together or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from feature_platform.compat.dagster_internals import partition_range_tags
from feature_platform.compat.dagster_sqlite import STORAGE_CLASS, STORAGE_MODULE

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-06")
KEYS = DAYS.get_partition_keys()  # 5 days
CHECKS = ["rows_positive", "no_nulls"]


@dg.multi_asset(  # as the feature views report a range run: its checks as an evaluation per partition
    specs=[dg.AssetSpec("daily", partitions_def=DAYS, skippable=True)], partitions_def=DAYS, can_subset=True,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec(name, asset="daily", partitions_def=DAYS) for name in CHECKS])
def daily(context):
    yield dg.MaterializeResult(asset_key="daily", metadata={"rows": 3})
    for key in context.partition_keys:
        for name in CHECKS:
            yield dg.AssetCheckEvaluation(asset_key=dg.AssetKey("daily"), check_name=name, partition=key, passed=True)


def _instance(base: Path):
    return dg.instance_for_test(overrides={"storage": {"custom": {
        "module": STORAGE_MODULE, "class": STORAGE_CLASS, "config": {"base_dir": str(base)}}}})


def _run_range(instance) -> dg.ExecuteInProcessResult:
    return dg.materialize([daily], instance=instance, tags=partition_range_tags(KEYS[0], KEYS[-1]))


def test_a_range_run_stores_each_partitions_materialization_and_check_evaluations(tmp_path, monkeypatch):
    batches = []
    with _instance(tmp_path / "storage") as instance:
        storage = instance.event_log_storage
        store_batch = type(storage).store_event_batch
        monkeypatch.setattr(type(storage), "store_event_batch",
                            lambda self, events: (batches.append([e.dagster_event_type for e in events]),
                                                  store_batch(self, events))[1])
        assert _run_range(instance).success
        stored = instance.fetch_materializations(dg.AssetKey("daily"), limit=100).records
        assert sorted(r.partition_key for r in stored) == KEYS
        for name in CHECKS:
            history = storage.get_asset_check_execution_history(dg.AssetCheckKey(dg.AssetKey("daily"), name), limit=100)
            assert sorted(r.partition for r in history) == KEYS
            assert {r.status.value for r in history} == {"SUCCEEDED"}
    # The range's materializations went to the storage as one batch (one transaction per shard).
    assert [dg.DagsterEventType.ASSET_MATERIALIZATION] * len(KEYS) in batches


def test_an_events_writes_roll_back_together_when_one_fails(tmp_path, monkeypatch):
    with _instance(tmp_path / "storage") as instance:
        assert _run_range(instance).success
        storage = instance.event_log_storage
        run_id = instance.get_runs(limit=1)[0].run_id
        event = next(e for e in instance.all_logs(run_id) if e.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION)

        def fail(*args, **kwargs):
            raise RuntimeError("the index write failed")

        monkeypatch.setattr(type(storage), "store_asset_check_event", fail)
        before = _event_counts(tmp_path / "storage", run_id)
        with pytest.raises(RuntimeError, match="the index write failed"):
            storage.store_event(event)  # its run-shard and index rows were written before the failure
        assert _event_counts(tmp_path / "storage", run_id) == before
        monkeypatch.undo()
        storage.store_event(event)  # the storage is usable afterwards
        run_rows, index_rows = before
        assert _event_counts(tmp_path / "storage", run_id) == (run_rows + 1, index_rows + 1)


def _event_counts(base: Path, run_id: str) -> tuple[int, int]:
    runs = base / "history" / "runs"
    counts = []
    for shard in (runs / f"{run_id}.db", runs / "index.db"):
        with sqlite3.connect(shard) as conn:
            counts.append(conn.execute("SELECT count(*) FROM event_logs").fetchone()[0])
        conn.close()
    return counts[0], counts[1]
