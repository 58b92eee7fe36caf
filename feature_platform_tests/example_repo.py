"""The example feature repository (examples/chat_activity), as the tests reach it: its definitions and its
sessions source's reader."""

from __future__ import annotations

from chat_activity.sources import SESSIONS

from feature_platform.repo import default_location, load_repository
from feature_platform.sources.parquet import ParquetSource
from feature_platform.sources.rows import STRING, arrow_schema

EXAMPLE = load_repository(default_location())
SCHEMA = arrow_schema(SESSIONS)

__all__ = ["EXAMPLE", "SCHEMA", "SESSIONS", "STRING", "all_specs", "build_raw_sessions_asset", "get_spec",
           "read_sessions"]


def read_sessions(path, start, end):
    """The example's sessions source read from `path` (what the engines read when it points there)."""
    return ParquetSource(SESSIONS, str(path)).read(start, end)


def all_specs():
    return EXAMPLE.views


def get_spec(name: str):
    return EXAMPLE.view(name)


def build_raw_sessions_asset(settings):
    from feature_platform.defs.raw_sources import build_source_spec

    return build_source_spec(SESSIONS, settings, EXAMPLE)
