"""feature_platform: ML features declared once, materialized by Dagster, served by Feast.

The public API is `FeaturePlatform`, `build_definitions` (a feature repository's Dagster definitions) and the
error types; a feature repository declares its sources and views with the types in `feature_platform.spec`.

Importing the package is light: the error types are plain classes, and `FeaturePlatform` (which brings Feast,
Dagster and pandas) is imported on first use (PEP 562), so `import feature_platform.spec` and the CLI's `--help`
do not pay for them.
"""

from typing import TYPE_CHECKING

from feature_platform.errors import (
    AggregationOverflowError,
    BreakingChangeError,
    ConfigurationError,
    FeaturePlatformError,
    InvalidArgumentError,
    InvalidBatchError,
    InvalidDateError,
    InvalidEntityError,
    MaterializationError,
    MissingSourceDaysError,
    SourceDataError,
    StoreUnavailableError,
    UnknownFeatureError,
    UnknownFeatureViewError,
    ValidationFailedError,
    ViewInUseError,
)
from feature_platform.util.memory import map_large_blocks, share_allocator
from feature_platform.versioning.deprecation import FeatureViewDeprecationWarning

share_allocator()  # before pyarrow is first imported (the imports above do not load it): see util.memory
map_large_blocks()

if TYPE_CHECKING:
    from feature_platform.definitions import build_definitions
    from feature_platform.platform import FeaturePlatform

_LAZY = {"FeaturePlatform": "feature_platform.platform", "build_definitions": "feature_platform.definitions"}


def __getattr__(name: str):
    if name in _LAZY:  # imported on first use: they bring Feast, Dagster and pandas
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later reads skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AggregationOverflowError",
    "BreakingChangeError",
    "ConfigurationError",
    "FeaturePlatform",
    "FeaturePlatformError",
    "FeatureViewDeprecationWarning",
    "InvalidArgumentError",
    "InvalidBatchError",
    "InvalidDateError",
    "InvalidEntityError",
    "MaterializationError",
    "MissingSourceDaysError",
    "SourceDataError",
    "StoreUnavailableError",
    "UnknownFeatureError",
    "UnknownFeatureViewError",
    "ValidationFailedError",
    "ViewInUseError",
    "build_definitions",
]
