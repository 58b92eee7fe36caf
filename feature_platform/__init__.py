"""feature_platform: ML features declared once, materialized by Dagster, served by Feast.

The public API is `FeaturePlatform` and the error types; specs are declared with the types in
`feature_platform.spec`.
"""

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
from feature_platform.platform import FeaturePlatform
from feature_platform.versioning.deprecation import FeatureViewDeprecationWarning

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
