"""The Dagster executor of every run, chosen by FEATURE_PLATFORM_EXECUTOR (docs/scaling-out.md).

`in_process` is the default: a run is one step (a range of partitions, or one pushed batch), so a
subprocess or pod per step costs more than it gives; parallelism comes from concurrent runs (the run
coordinator's `max_concurrent_runs`). `multiprocess`, `celery` (dagster-celery) and `k8s` (dagster-k8s'
`k8s_job_executor`) move steps elsewhere. FEATURE_PLATFORM_EXECUTOR_CONFIG names a YAML file whose
`execution: config:` block (a run config's) configures the executor; Dagster validates it when the
definitions load.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from feature_platform.config import Settings
from feature_platform.errors import FeaturePlatformError

_PACKAGES = {"celery": ("dagster_celery", "celery_executor", "dagster-celery"),
             "k8s": ("dagster_k8s", "k8s_job_executor", "dagster-k8s")}


def executor_config(path: str) -> dict:
    """The `execution: config:` block of `path`."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise FeaturePlatformError(f"FEATURE_PLATFORM_EXECUTOR_CONFIG={path}: cannot be read as YAML: {exc}") from exc
    config = ((document or {}).get("execution") or {}).get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise FeaturePlatformError(f"FEATURE_PLATFORM_EXECUTOR_CONFIG={path}: no `execution: config:` mapping")
    return config


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    """The executor FEATURE_PLATFORM_EXECUTOR names, configured from FEATURE_PLATFORM_EXECUTOR_CONFIG."""
    if settings.executor == "in_process":
        executor = dg.in_process_executor
    elif settings.executor == "multiprocess":
        executor = dg.multiprocess_executor
    else:
        module, name, package = _PACKAGES[settings.executor]
        try:
            executor = getattr(__import__(module), name)
        except ImportError as exc:
            raise FeaturePlatformError(
                f"FEATURE_PLATFORM_EXECUTOR={settings.executor} needs {package}: pip install -c requirements.lock "
                f"-e '.[{settings.executor}]'") from exc
    if settings.executor_config:
        executor = executor.configured(executor_config(settings.executor_config), name=executor.name)
        # Validated now (Dagster would only do so when a run starts): a typo fails the code location's load.
        result = executor.config_schema.resolve_config({})
        if not result.success:
            problems = "; ".join(error.message for error in result.errors)
            raise FeaturePlatformError(f"FEATURE_PLATFORM_EXECUTOR_CONFIG={settings.executor_config} is not a valid "
                                       f"config of the {settings.executor} executor: {problems}")
    return executor


__all__ = ["executor_config", "executor_for"]
