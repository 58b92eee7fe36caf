"""feature_platform: ML features declared once, materialized by Dagster, served by Feast.

The public API is `FeaturePlatform` and the error types; specs are declared with the types in
`feature_platform.spec`.

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
    SourceDataError,
    StoreUnavailableError,
    UnknownFeatureError,
    UnknownFeatureViewError,
    ValidationFailedError,
    ViewInUseError,
)
from feature_platform.versioning.deprecation import FeatureViewDeprecationWarning

if TYPE_CHECKING:
    from feature_platform.platform import FeaturePlatform


def __getattr__(name: str):
    if name == "FeaturePlatform":  # imported on first use: it brings Feast, Dagster and pandas
        from feature_platform.platform import FeaturePlatform

        globals()[name] = FeaturePlatform  # later reads skip this function
        return FeaturePlatform
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "FeaturePlatform"})


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
    "SourceDataError",
    "StoreUnavailableError",
    "UnknownFeatureError",
    "UnknownFeatureViewError",
    "ValidationFailedError",
    "ViewInUseError",
]
