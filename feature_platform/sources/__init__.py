"""Declared raw sources: each `SourceSpec` of the feature repository, read for a time range by its kind.

`reader_for` is the one place a source's location is resolved: `{home}` is the platform's home, a relative
path is relative to the repository, and FEATURE_PLATFORM_SESSIONS_PATH, when set, is the path of a source
named `sessions` (the example repository's raw log).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from feature_platform.spec import SourceSpec

if TYPE_CHECKING:
    from feature_platform.config import Settings
    from feature_platform.sources.rows import SourceRows


def location_of(source: SourceSpec, settings: Settings, directory: Path | None) -> str:
    """Where a Parquet source's files are, for this deployment."""
    if source.name == "sessions" and not settings.uses_generated_sessions:
        return str(settings.sessions_path)
    path = source.path.replace("{home}", str(settings.home))
    if "://" in path or Path(path).expanduser().is_absolute() or directory is None:
        return str(Path(path).expanduser()) if "://" not in path else path
    return str(directory / path)


def reader_for(source: SourceSpec, settings: Settings, directory: Path | None) -> SourceRows:
    """The reader of `source` (`.read(start, end)` -> its rows in the declared schema, checked), by its kind."""
    return _READERS[source.kind](source, settings, directory)


def _parquet(source: SourceSpec, settings: Settings, directory: Path | None) -> SourceRows:
    from feature_platform.sources.parquet import ParquetSource

    return ParquetSource(source, location_of(source, settings, directory))


def _postgres(source: SourceSpec, settings: Settings, directory: Path | None) -> SourceRows:
    from feature_platform.sources.postgres import PostgresSource

    return PostgresSource.of(source, settings.pg_conninfo())


_READERS = {"parquet": _parquet, "postgres": _postgres}
