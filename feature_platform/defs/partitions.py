"""The daily partitions every batch feature view and raw source shares."""

import dagster as dg

from feature_platform.config import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """UTC days from the configured start; the last partition is the last complete day."""
    return dg.DailyPartitionsDefinition(start_date=settings.partitions_start.isoformat(), timezone="UTC")
