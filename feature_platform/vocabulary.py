"""The names every layer shares: columns of the feature rows, statuses of online values, output column names.

A leaf module (standard library only), so stores, compute, serving, training and push agree on them
without importing each other.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

# Columns every offline row carries beside the join key and the features.
EVENT_TIMESTAMP = "event_timestamp"  # the feature timestamp: when the value became knowable
CREATED_TIMESTAMP = "created_timestamp"  # when the row was written (breaks ties between equal feature timestamps)

# Status of an online value, and the metadata columns an online read adds per feature column.
PRESENT, MISSING, EXPIRED = "present", "missing", "expired"
STATUS_SUFFIX, EVENT_TIMESTAMP_SUFFIX = "__status", "__event_timestamp"


def status_column(column: str) -> str:
    return f"{column}{STATUS_SUFFIX}"


def event_timestamp_column(column: str) -> str:
    return f"{column}{EVENT_TIMESTAMP_SUFFIX}"


def full_feature_name(view: str, feature: str) -> str:
    """The output column of `view:feature` with `full_feature_names=True` (Feast's `<view>__<feature>`)."""
    return f"{view}__{feature}"


def day_end(day: date) -> datetime:
    """The feature timestamp of partition `day`: the next midnight, UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1)
