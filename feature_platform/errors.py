"""The package's own exception types: every user-facing failure is one of these.

Messages are one line where they can be and never echo a caller's input whole: `shorten` cuts what they
quote (a 100,000-character feature reference must not become a 100 KB exception, log line or HTTP body).
"""

ECHO_LIMIT = 80  # characters of a caller's value a message quotes


def shorten(value, limit: int = ECHO_LIMIT, *, quote: bool = True) -> str:
    """`repr(value)` (`str(value)` with `quote=False`, e.g. for a path), cut to `limit` characters."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


class FeaturePlatformError(Exception):
    """Base class of all feature_platform errors."""


class UnknownFeatureViewError(FeaturePlatformError, KeyError):
    """A feature view name that no spec declares."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownFeatureError(FeaturePlatformError, KeyError):
    """A `view:feature` reference whose feature the view does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


class ConfigurationError(FeaturePlatformError, ValueError):
    """A FEATURE_PLATFORM_* environment variable whose value cannot be used; the message names the variable
    (and never shows a password's value)."""


class InvalidArgumentError(FeaturePlatformError, ValueError):
    """An argument of a public method the platform cannot use (the message names the argument)."""


class InvalidDateError(FeaturePlatformError, ValueError):
    """A partition date that is malformed, reversed or outside the partitions."""


class SourceDataError(FeaturePlatformError, ValueError):
    """Raw source data that does not match its declared schema."""


class MissingSourceDaysError(SourceDataError):
    """A partition's window reads raw days its source does not hold (yet): nothing is computed from a
    partial window. The message names the view, the partition and the missing days."""


class InvalidBatchError(FeaturePlatformError, ValueError):
    """A pushed batch that cannot be judged row by row (e.g. two columns with the same name)."""


class InvalidEntityError(FeaturePlatformError, ValueError):
    """An entity key of the wrong type for its view (e.g. a float or a string for an int64 user id)."""


class RequestFeatureError(FeaturePlatformError, ValueError):
    """A request view's function failed or returned something other than its declared features, or the
    request lacks one of its request fields."""


class ValidationFailedError(FeaturePlatformError):
    """Computed features failed their Pandera schema; nothing was written for that partition.

    In a run over a range of partitions, `completed` holds the results of the partitions before it,
    which were written (offline and online) as if they had run alone; it is empty when they could not be
    written online (their offline partitions were then restored). Any other exception out of a range run
    carries `completed` alike (`pipeline.materialize_range`)."""

    def __init__(self, message: str, *, view: str, partition: str, failures, quarantine_path: str | None):
        super().__init__(message)
        self.view = view
        self.partition = partition
        self.failures = failures
        self.quarantine_path = quarantine_path
        self.completed: list = []


class AggregationOverflowError(FeaturePlatformError, OverflowError):
    """A window aggregation whose exact value does not fit its feature's dtype (an int64 sum beyond
    -2**63..2**63-1): the partition fails and nothing is written for it. Both compute engines raise it,
    naming the view, partition, feature and one entity; `value` is the exact sum (a Python int)."""

    def __init__(self, message: str, *, view: str | None = None, partition: str | None = None,
                 feature: str | None = None, entity=None, value: int | None = None):
        super().__init__(message)
        self.view, self.partition, self.feature, self.entity, self.value = view, partition, feature, entity, value


class StoreUnavailableError(FeaturePlatformError, ConnectionError):
    """An offline or online store that cannot be reached."""


class MaterializationError(FeaturePlatformError):
    """A Dagster run that materializes feature views failed."""


class BreakingChangeError(FeaturePlatformError):
    """`apply` refused a breaking change to a registered feature view in place (it needs a new version);
    nothing was applied. `plan` holds the full plan, migration plans included."""

    def __init__(self, message: str, plan=None):
        super().__init__(message)
        self.plan = plan


class ViewInUseError(FeaturePlatformError):
    """A feature view cannot be removed: it is still declared, or a feature service or training set reads it."""
