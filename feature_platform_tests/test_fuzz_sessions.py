"""Fuzzed raw sessions (issue 9 item 6): generated logs written as Parquet, each with at most one kind of
corruption. A corrupt log is a `SourceDataError` naming the column (nothing is computed from it); a clean
one (extra columns, naive or other-zone times, far-future rows, huge or unicode strings, empty) reads back
exactly as written.

Issue 19 items 6 and 10: folders of several files, each written its own way (`raw_variants`: other widths,
units, zones, encodings, no statistics...), at most one of them malformed: the folder reads back exactly,
with the aggregates of its rows, or the run is refused with a one-line `SourceDataError` naming that file."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from chat_activity.user_activity import SPEC
from hypothesis import given, settings
from hypothesis import strategies as st

import feature_platform as fp
from feature_platform.compute.engine import PandasEngine
from feature_platform.compute.window_aggregate import aggregate_chunk
from feature_platform_tests import raw_variants
from feature_platform_tests.example_repo import EXAMPLE, SCHEMA, STRING, read_sessions
from feature_platform_tests.helpers import make_embedded_settings, sessions_frame, write_sessions

LO, HI = datetime(2026, 1, 2, tzinfo=timezone.utc), datetime(2026, 1, 9, tzinfo=timezone.utc)
COUNTS = ("message_count", "tool_invocations", "tokens")

session = st.tuples(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 86_400 * 7 - 1),  # seconds after LO
    st.floats(0, 1e9, allow_nan=False),
    st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**40),  # messages, tools, tokens
    st.text(min_size=1, max_size=20),
)


def clean(items) -> pd.DataFrame:
    rows = [(u, f"s{i}", (LO + pd.Timedelta(seconds=t)).isoformat(), d, m, tl, model, tok)
            for i, (u, t, d, m, tl, tok, model) in enumerate(items)]
    return sessions_frame(rows) if rows else sessions_frame([(1, "x", LO.isoformat(), 1.0, 1, 1, "m", 1)]).iloc[:0]


# (name, column it names or None when the log stays valid, corruption)
CORRUPTIONS = [
    ("null", None, None),  # filled in per column below
    ("negative", None, None),
    ("nan duration", "duration_sec", lambda df, i: df.assign(duration_sec=df["duration_sec"].mask(df.index == i, np.nan))),
    ("inf duration", "duration_sec", lambda df, i: df.assign(duration_sec=df["duration_sec"].mask(df.index == i, np.inf))),
    ("text counts", "tokens", lambda df, i: df.assign(tokens=df["tokens"].astype(str))),
    ("bool counts", "message_count", lambda df, i: df.assign(message_count=df["message_count"] > 0)),
    ("numeric model", "model", lambda df, i: df.assign(model=np.arange(len(df)))),
    ("float user ids", "user_id", lambda df, i: df.assign(user_id=df["user_id"].astype(float).mask(df.index == i, 0.5))),
    ("text timestamps", "event_timestamp", lambda df, i: df.assign(event_timestamp=df["event_timestamp"].astype(str))),
    ("missing column", "tool_invocations", lambda df, i: df.drop(columns="tool_invocations")),
]
VALID = [
    ("extra column", lambda df: df.assign(extra="x", another=1.5)),
    ("naive times", lambda df: df.assign(event_timestamp=df["event_timestamp"].dt.tz_localize(None))),
    ("other zone", lambda df: df.assign(event_timestamp=df["event_timestamp"].dt.tz_convert("Pacific/Chatham"))),
    ("huge strings", lambda df: df.assign(model="\u00e9\U0001f600" * 50_000, session_id=df["session_id"] + "-" * 10_000)),
    ("int32 counts", lambda df: df.assign(**{c: (df[c] % 2**31).astype("int32") for c in COUNTS})),
    ("unchanged", lambda df: df),
]


def corruption(df: pd.DataFrame, kind: str, column: str, i: int) -> pd.DataFrame:
    if kind == "null":
        values = df[column].astype(object).copy()
        values.iloc[i] = None
        return df.assign(**{column: pd.array(values, dtype="Int64") if column in (*COUNTS, "user_id") else values})
    if kind == "negative":
        return df.assign(**{column: df[column].mask(df.index == i, -1)})
    raise AssertionError(kind)


@settings(max_examples=60, deadline=None)
@given(st.lists(session, min_size=1, max_size=8), st.sampled_from(range(len(CORRUPTIONS))),
       st.sampled_from(SCHEMA.names), st.sampled_from(("duration_sec", *COUNTS)), st.data())
def test_a_corrupt_log_is_a_clear_error_naming_the_column(tmp_path_factory, items, which, null_col, neg_col, data):
    df = clean(items)
    i = data.draw(st.integers(0, len(df) - 1))
    kind, column, corrupt = CORRUPTIONS[which]
    if kind == "null":
        bad, column = corruption(df, "null", null_col, i), null_col
    elif kind == "negative":
        bad, column = corruption(df, "negative", neg_col, i), neg_col
    else:
        bad = corrupt(df, i)
    directory = write_sessions(tmp_path_factory.mktemp("raw"), bad)
    with pytest.raises(fp.SourceDataError) as info:
        read_sessions(directory, LO, HI)
    assert repr(column) in str(info.value) and len(str(info.value)) < 3000, str(info.value)[:500]


@settings(max_examples=40, deadline=None)
@given(st.lists(session, min_size=0, max_size=8), st.sampled_from(VALID), st.integers(0, 3))
def test_a_clean_log_reads_back_exactly(tmp_path_factory, items, variant, far_future):
    df = clean(items)
    name, change = variant
    written = change(df)
    future = clean(items[:far_future]).assign(
        session_id=lambda d: "f" + d["session_id"], event_timestamp=pd.Timestamp("2200-01-01", tz="UTC"))
    if name == "naive times":
        future = future.assign(event_timestamp=future["event_timestamp"].dt.tz_localize(None))
    directory = tmp_path_factory.mktemp("raw")
    written.to_parquet(directory / "a.parquet", index=False)
    if len(future):  # a second file: rows no partition before 2200 may read
        future.astype(written[future.columns].dtypes.to_dict()).to_parquet(directory / "b.parquet", index=False)
    got = read_sessions(directory, LO, HI).sort_values("session_id", kind="stable").reset_index(drop=True)
    want = written[SCHEMA.names].sort_values("session_id", kind="stable").reset_index(drop=True)
    assert got["event_timestamp"].tolist() == pd.to_datetime(want["event_timestamp"], utc=True).tolist()
    for column in SCHEMA.names:
        if column != "event_timestamp":
            assert got[column].tolist() == want[column].tolist(), column


def test_a_corrupt_file_in_a_directory_fails_the_run_and_writes_nothing(tmp_path):
    settings_ = make_embedded_settings(tmp_path)
    good = clean([(1, 3600, 10.0, 1, 0, 5, "opus"), (2, 7200, 20.0, 2, 1, 6, "haiku")])
    write_sessions(settings_.sessions_path, good)
    (settings_.sessions_path / "later.parquet").write_bytes(b"PAR1 half a file")
    platform = fp.FeaturePlatform(settings_)
    # Issue 19 item 11: the documented SourceDataError itself (it was a MaterializationError quoting it)
    with pytest.raises(fp.SourceDataError, match=r"^sessions source .*later\.parquet cannot be read as Parquet"):
        platform.materialize("user_activity", "2026-01-02")  # the day the log holds
    (settings_.sessions_path / "later.parquet").unlink()
    good.assign(tokens=[5, -6]).to_parquet(settings_.sessions_path / "sessions.parquet", index=False)
    with pytest.raises(fp.SourceDataError, match=r"column 'tokens': 1 negative value\(s\)"):
        platform.materialize("user_activity", "2026-01-02")
    assert platform.offline_table("user_activity").empty


FIRST_DAY = LO.date()  # partitions whose 7-day windows hold every generated session
DAYS = [FIRST_DAY + timedelta(days=i) for i in range(8)]
whole_or_fractional = st.one_of(st.integers(0, 10**6).map(float), st.floats(0, 1e9, allow_nan=False))
folder_session = st.tuples(
    st.integers(-(2**63), 2**63 - 1), st.integers(0, 86_400 * 7 - 1), whole_or_fractional,
    st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**40), st.sampled_from(["opus", "haiku", "é😀"]))


def _in_schema(df: pd.DataFrame) -> pd.DataFrame:
    """The frame as `read_sessions` returns it (Arrow strings, UTC microseconds)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(df[SCHEMA.names], schema=SCHEMA, preserve_index=False)
    return table.to_pandas(types_mapper={pa.string(): STRING}.get)


@settings(max_examples=60, deadline=None)
@given(files=st.lists(st.tuples(st.lists(folder_session, max_size=6), st.sampled_from(sorted(raw_variants.VALID))),
                      min_size=1, max_size=4),
       corrupt=st.one_of(st.none(), st.tuples(st.sampled_from(sorted(raw_variants.CORRUPT)), st.integers(0, 3),
                                              st.integers(0, 5))),
       skipped=st.booleans())
def test_a_folder_of_differently_written_files_reads_exactly_or_names_the_bad_file(tmp_path_factory, files, corrupt,
                                                                                   skipped):
    root = tmp_path_factory.mktemp("folder")
    directory = root / "sessions"
    directory.mkdir()
    if skipped:
        raw_variants.write_skipped(directory)
        raw_variants.write_untyped_empty(directory)
    bad_file, frames = None, []
    for n, (items, variant) in enumerate(files):
        df = raw_variants.prepared(variant, clean(items).assign(session_id=lambda d, n=n: f"f{n}-" + d["session_id"]))
        if corrupt is not None and n == corrupt[1] % len(files):
            kind, _, row = corrupt
            column, write = raw_variants.CORRUPT[kind]
            if df.empty:
                df = clean([(7, 60, 1.0, 1, 1, 1, "opus")]).assign(session_id=f"f{n}-only")
            bad_file = write(df, directory, f"part-{n}", row % len(df))
        else:
            raw_variants.VALID[variant](df, directory, f"part-{n}")
            frames.append(df)

    engine = PandasEngine(dataclasses.replace(make_embedded_settings(root), sessions_path=directory), EXAMPLE)
    if bad_file is not None:
        with pytest.raises(fp.SourceDataError) as info:
            engine.compute_chunk(SPEC, DAYS)
        message = str(info.value)
        assert str(bad_file) in message, (kind, message[:500])
        assert column is None or repr(column) in message, (kind, message[:500])
        assert "\n" not in message and len(message) < 3000, (kind, message[:500])
        return

    want = _in_schema(pd.concat(frames, ignore_index=True)).sort_values("session_id").reset_index(drop=True)
    got = read_sessions(directory, LO, HI).sort_values("session_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    chunk, expected = engine.compute_chunk(SPEC, DAYS), aggregate_chunk(SPEC, want, DAYS)
    pd.testing.assert_frame_equal(chunk.frame, expected.frame)
    assert chunk.bounds.tolist() == expected.bounds.tolist()
