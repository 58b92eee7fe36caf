"""The raw sessions source: any Parquet file or directory, only the requested range, clear errors."""

import os
import subprocess
import sys
from datetime import datetime, timezone

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import feature_platform as fp
from feature_platform.errors import SourceDataError
from feature_platform_tests import raw_variants
from feature_platform_tests.example_repo import SCHEMA, read_sessions
from feature_platform_tests.helpers import make_embedded_settings, sessions_frame, write_sessions

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


# --- issue 19 items 6, 10, 11: every raw file that does not match the schema is a SourceDataError naming it ------
def _null_time_without_statistics(path, rows=RAW, i=0):
    table = pa.Table.from_pandas(rows, preserve_index=False)
    times = table["event_timestamp"].to_pylist()
    times[i] = None
    table = table.set_column(2, "event_timestamp", pa.array(times, table.schema.field("event_timestamp").type))
    pq.write_table(table, path, write_statistics=False)
    return path


def test_a_null_time_in_a_file_without_statistics_is_refused_not_dropped(tmp_path):
    RAW.to_parquet(tmp_path / "a.parquet")
    bad = _null_time_without_statistics(tmp_path / "b.parquet", RAW.assign(session_id=["x", "y", "z"]), i=1)
    with pytest.raises(SourceDataError, match=rf"{bad}: .*column 'event_timestamp': 1 null value\(s\).*'y'"):
        read_sessions(tmp_path, LO, HI)


@pytest.mark.parametrize("single", [True, False])
def test_a_repeated_column_names_the_file_and_column(tmp_path, single):
    if not single:
        RAW.to_parquet(tmp_path / "a.parquet")
    table = pa.Table.from_pandas(RAW, preserve_index=False)
    pq.write_table(table.append_column("user_id", table["user_id"]), tmp_path / "b.parquet")
    with pytest.raises(SourceDataError, match=rf"{tmp_path / 'b.parquet'}: column 'user_id' appears 2 times"):
        read_sessions(tmp_path / "b.parquet" if single else tmp_path, LO, HI)


@pytest.mark.parametrize("naive_first", [True, False])
def test_naive_and_zone_aware_files_share_a_folder_as_utc(tmp_path, naive_first):
    naive = RAW.iloc[:2].assign(event_timestamp=RAW["event_timestamp"].iloc[:2].dt.tz_localize(None))
    aware = RAW.iloc[2:].assign(event_timestamp=RAW["event_timestamp"].iloc[2:].dt.tz_convert("America/New_York"))
    naive.to_parquet(tmp_path / ("a.parquet" if naive_first else "b.parquet"))
    aware.to_parquet(tmp_path / ("b.parquet" if naive_first else "a.parquet"))
    out = read_sessions(tmp_path, datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 4, tzinfo=timezone.utc))
    assert sorted(out["session_id"]) == ["a", "b", "c"]
    assert sorted(out["event_timestamp"]) == sorted(RAW["event_timestamp"])


def test_a_fractional_count_names_the_file_column_and_row(tmp_path):
    RAW.to_parquet(tmp_path / "a.parquet")
    RAW.assign(session_id=["x", "y", "z"], message_count=[1.0, 6.5, 2.0]).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(SourceDataError, match=rf"{tmp_path / 'b.parquet'}: .*column 'message_count': 1 non-integer "
                                              r"value\(s\), first rows: \(session_id='y', .*message_count=6\.5\)"):
        read_sessions(tmp_path, LO, HI)
    # whole numbers written as floats are read exactly
    RAW.assign(session_id=["x", "y", "z"], message_count=[1.0, 6.0, 2.0]).to_parquet(tmp_path / "b.parquet")
    assert read_sessions(tmp_path, LO, HI).set_index("session_id")["message_count"].to_dict() == {"b": 2, "y": 6}


@pytest.mark.parametrize("kind", sorted(raw_variants.CORRUPT))
def test_every_malformed_file_is_refused_naming_it(tmp_path, kind):
    """A good file on either side of the bad one: the error names the bad file (and its column), on one line."""
    column, write = raw_variants.CORRUPT[kind]
    RAW.to_parquet(tmp_path / "a.parquet")
    bad = write(RAW.assign(session_id=["x", "y", "z"]), tmp_path, "b", 1)
    RAW.assign(session_id=["p", "q", "r"]).to_parquet(tmp_path / "c.parquet")
    with pytest.raises(SourceDataError) as info:
        read_sessions(tmp_path, LO, HI)
    message = str(info.value)
    assert message.startswith(f"sessions source {bad}") and "\n" not in message, message
    assert column is None or repr(column) in message, message


def test_every_valid_way_of_writing_a_file_reads_the_same_sessions(tmp_path):
    frames = []
    for n, (name, write) in enumerate(sorted(raw_variants.VALID.items())):
        df = raw_variants.prepared(name, RAW.assign(session_id=RAW["session_id"] + f"-{n}"))
        write(df, tmp_path, f"part-{n}")
        frames.append(df)
    raw_variants.write_skipped(tmp_path)
    raw_variants.write_untyped_empty(tmp_path)
    everything = (datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 4, tzinfo=timezone.utc))
    out = read_sessions(tmp_path, *everything).sort_values("session_id").reset_index(drop=True)
    want = pd.concat(frames).sort_values("session_id").reset_index(drop=True)
    assert out["session_id"].tolist() == want["session_id"].tolist()
    assert out["event_timestamp"].tolist() == want["event_timestamp"].tolist()
    for column in ("user_id", "duration_sec", "message_count", "tool_invocations", "model", "tokens"):
        assert out[column].tolist() == want[column].tolist(), column


def test_a_folder_without_parquet_files_is_a_clear_error(tmp_path):
    raw_variants.write_skipped(tmp_path)
    with pytest.raises(SourceDataError, match="holds no Parquet file"):
        read_sessions(tmp_path, LO, HI)


def _bad_folder(settings, kind: str):
    """A good file and a malformed one (`b.parquet`) in the sessions folder; returns the bad file's path."""
    write_sessions(settings.sessions_path, RAW)
    if kind == "null time without statistics":
        return _null_time_without_statistics(settings.sessions_path / "b.parquet", RAW.assign(session_id=["x", "y", "z"]))
    RAW.assign(session_id=["x", "y", "z"], message_count=[1.0, 6.5, 2.0]).to_parquet(settings.sessions_path / "b.parquet")
    return settings.sessions_path / "b.parquet"


@pytest.mark.parametrize("kind", ["null time without statistics", "fractional count"])
def test_materialize_raises_the_documented_source_error_and_writes_nothing(profile_settings, kind):
    settings = profile_settings
    bad = _bad_folder(settings, kind)
    platform = fp.FeaturePlatform(settings)
    with pytest.raises(SourceDataError) as info:
        platform.materialize("user_activity", "2026-01-02", "2026-01-03")
    message = str(info.value)
    assert type(info.value) is SourceDataError  # not a MaterializationError quoting it
    assert message.startswith(f"sessions source {bad}: ") and "\n" not in message, message
    assert "SourceDataError" not in message and message.count(str(bad)) == 1, message
    assert platform.offline_table("user_activity").empty
    assert not platform.instance().get_materialized_partitions(dg.AssetKey("user_activity"))
    online = platform.online_features(["user_activity:sessions_7d"], [{"user_id": 1}], with_metadata=True)
    assert online["sessions_7d__status"].tolist() == ["missing"]


def test_materialize_reads_naive_and_zone_aware_files_as_the_same_utc_sessions(tmp_path):
    aware = make_embedded_settings(tmp_path / "aware")
    write_sessions(aware.sessions_path, RAW)
    mixed = make_embedded_settings(tmp_path / "mixed")
    mixed.sessions_path.mkdir(parents=True)
    RAW.iloc[:2].assign(event_timestamp=RAW["event_timestamp"].iloc[:2].dt.tz_localize(None)).to_parquet(
        mixed.sessions_path / "a.parquet")
    RAW.iloc[2:].assign(event_timestamp=RAW["event_timestamp"].iloc[2:].dt.tz_convert("Asia/Tokyo")).to_parquet(
        mixed.sessions_path / "b.parquet")
    tables = []
    for settings in (aware, mixed):
        platform = fp.FeaturePlatform(settings)
        platform.materialize("user_activity", "2026-01-01", "2026-01-03")
        tables.append(platform.offline_table("user_activity").drop(columns="created_timestamp"))
    assert len(tables[0]) > 3
    pd.testing.assert_frame_equal(tables[1], tables[0])


def test_the_cli_prints_a_bad_raw_file_on_one_line(embedded_settings):
    bad = _bad_folder(embedded_settings, "fractional count")
    env = {**os.environ, **embedded_settings.as_env(),
           "FEATURE_PLATFORM_SESSIONS_PATH": str(embedded_settings.sessions_path)}
    done = subprocess.run([sys.executable, "-m", "feature_platform.cli", "materialize", "--view", "user_activity",
                           "--start", "2026-01-02"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("\r")]
    assert len(lines) == 1 and lines[0].startswith(f"error: sessions source {bad}: "), done.stderr[-3000:]
    assert "column 'message_count': 1 non-integer value(s)" in lines[0]


# --- files whose statistics prove they hold nothing of the range are not scanned ------------------------------------
def test_files_outside_the_range_by_their_statistics_are_not_scanned_and_the_rows_are_the_same(tmp_path, monkeypatch):
    import feature_platform.sources.parquet as parquet

    days = pd.date_range("2026-01-01", periods=6, freq="D", tz="UTC")
    for i, day in enumerate(days):
        rows = RAW.assign(event_timestamp=[day + pd.Timedelta(hours=h) for h in (1, 5, 23)],
                          session_id=[f"{i}{s}" for s in "abc"])
        if i == 3:  # one file of other physical types: its own group, read as the declared schema
            rows = rows.astype({"tokens": "int32"})
        rows.to_parquet(tmp_path / f"{day.date()}.parquet")
    scanned = []
    real_scan = parquet.ParquetSource._scan
    monkeypatch.setattr(parquet.ParquetSource, "_scan", lambda self, fragments, start, end: (
        scanned.extend(f.path for f in fragments), real_scan(self, fragments, start, end))[1])
    for lo, hi in [(days[1], days[3]), (days[3] + pd.Timedelta(hours=2), days[4]), (days[5] + pd.Timedelta(days=3),
                                                                                     days[5] + pd.Timedelta(days=4))]:
        scanned.clear()
        pruned = read_sessions(tmp_path, lo.to_pydatetime(), hi.to_pydatetime())
        pruned_files = sorted(scanned)
        with monkeypatch.context() as every_file:
            every_file.setattr(parquet, "_outside", lambda *args: False)
            pd.testing.assert_frame_equal(pruned, read_sessions(tmp_path, lo.to_pydatetime(), hi.to_pydatetime()),
                                          check_exact=True)
        assert len(pruned_files) < 6  # at most the files of the range, and one per type group
    assert pruned_files == [str(tmp_path / "2026-01-01.parquet"), str(tmp_path / "2026-01-04.parquet")]  # none: a file a group


def test_a_file_outside_the_range_without_null_counts_is_still_read_for_null_times(tmp_path):
    RAW.to_parquet(tmp_path / "a.parquet")
    late = RAW.assign(session_id=["x", "y", "z"], event_timestamp=RAW["event_timestamp"] + pd.Timedelta(days=30))
    bad = _null_time_without_statistics(tmp_path / "b.parquet", late, i=1)
    with pytest.raises(SourceDataError, match=rf"{bad}: .*column 'event_timestamp': 1 null value\(s\).*'y'"):
        read_sessions(tmp_path, LO, HI)
