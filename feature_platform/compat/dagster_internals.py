"""Dagster's internal names the platform uses, in one place.

Checked against dagster 1.13.27 (pinned in pyproject.toml). On an upgrade, check that
- `dagster._core.launcher` still exports `CheckRunHealthResult`, `LaunchRunContext` and `WorkerStatus` (the run
  launcher interface `defs/run_workers.py` implements, which Dagster's run monitoring calls);
- `dagster.core.run_coordinator` is still the module dagster.yaml names for `QueuedRunCoordinator` (Dagster's own
  docs use it; `feature_platform_tests/test_deploy_config.py` loads the shipped files);
- the tags `dagster/asset_partition_range_start` / `_end` still make a run materialize a range of partitions
  (what a UI backfill with `BackfillPolicy.multi_run` sets; `feature_platform_tests/test_backfill.py` pins them).
"""

from __future__ import annotations

from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus

__all__ = ["RUN_COORDINATOR_MODULE", "CheckRunHealthResult", "LaunchRunContext", "WorkerStatus",
           "partition_range_tags"]

RUN_COORDINATOR_MODULE = "dagster.core.run_coordinator"  # as dagster.yaml files name it
_RANGE_START, _RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def partition_range_tags(start: str, end: str) -> dict[str, str]:
    """The tags of a run that materializes the partitions `start..end` (inclusive) in one run."""
    return {_RANGE_START: start, _RANGE_END: end}
