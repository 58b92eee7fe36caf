"""feature_platform: ML features declared once, materialized by Dagster, served by Feast.

The public API is `FeaturePlatform` and the error types; specs are declared with the types in
`feature_platform.spec`.
"""

from feature_platform.errors import (
    FeaturePlatformError,
    InvalidDateError,
    MaterializationError,
    SourceDataError,
    StoreUnavailableError,
    UnknownFeatureError,
    UnknownFeatureViewError,
    ValidationFailedError,
)
from feature_platform.platform import FeaturePlatform

__all__ = [
    "FeaturePlatform",
    "FeaturePlatformError",
    "InvalidDateError",
    "MaterializationError",
    "SourceDataError",
    "StoreUnavailableError",
    "UnknownFeatureError",
    "UnknownFeatureViewError",
    "ValidationFailedError",
]
