"""The raw sessions source: any Parquet file or directory, only the requested range, clear errors."""

from datetime import datetime, timezone

import pandas as pd
import pytest

from feature_platform.errors import SourceDataError
from feature_platform.sources.sessions import SCHEMA, read_sessions
from feature_platform_tests.conftest import sessions_frame

RAW = sessions_frame([
    (1, "a", "2026-01-01T23:59:59.999999Z", 10.0, 1, 0, "opus", 5),
    (2, "b", "2026-01-02T00:00:00Z", 20.0, 2, 1, "haiku", 6),
    (3, "c", "2026-01-03T00:00:00Z", 30.0, 3, 2, "sonnet", 7),
])
LO, HI = datetime(2026, 1, 2, tzinfo=timezone.utc), datetime(2026, 1, 3, tzinfo=timezone.utc)


def test_reads_half_open_range_from_a_file(tmp_path):
    RAW.to_parquet(tmp_path / "s.parquet")
    out = read_sessions(tmp_path / "s.parquet", LO, HI)
    assert out["session_id"].tolist() == ["b"]
    assert str(out["event_timestamp"].dtype) == "datetime64[us, UTC]"


def test_reads_a_directory_of_files_and_casts_to_the_schema(tmp_path):
    RAW.iloc[:2].astype({"message_count": "int32", "tokens": "int32"}).to_parquet(tmp_path / "p1.parquet")
    RAW.iloc[2:].to_parquet(tmp_path / "p2.parquet")
    out = read_sessions(tmp_path, LO, datetime(2026, 1, 4, tzinfo=timezone.utc))
    assert out["session_id"].tolist() == ["b", "c"]
    assert list(out.columns) == SCHEMA.names
    assert str(out["message_count"].dtype) == "int64"


def test_naive_timestamps_are_read_as_utc(tmp_path):
    RAW.assign(event_timestamp=RAW["event_timestamp"].dt.tz_localize(None)).to_parquet(tmp_path / "s.parquet")
    out = read_sessions(tmp_path / "s.parquet", LO, HI)
    assert out["session_id"].tolist() == ["b"]
    assert out["event_timestamp"].iloc[0] == pd.Timestamp("2026-01-02T00:00:00Z")


def test_missing_column_is_a_clear_error(tmp_path):
    RAW.drop(columns=["tokens"]).to_parquet(tmp_path / "s.parquet")
    with pytest.raises(SourceDataError, match=r"missing column\(s\) \['tokens'\]"):
        read_sessions(tmp_path / "s.parquet", LO, HI)


def test_non_timestamp_event_time_is_a_clear_error(tmp_path):
    RAW.assign(event_timestamp="yesterday").to_parquet(tmp_path / "s.parquet")
    with pytest.raises(SourceDataError, match="'event_timestamp' has type string"):
        read_sessions(tmp_path / "s.parquet", LO, HI)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(SourceDataError, match="does not exist: set FEATURE_PLATFORM_SESSIONS_PATH"):
        read_sessions(tmp_path / "nothing-here", LO, HI)
