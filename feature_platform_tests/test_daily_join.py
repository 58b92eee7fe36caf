"""A daily view's join read straight from its partition files equals the DuckDB daily plan (itself proven equal
to the definition and to Feast in test_point_in_time.py) on every row and column.

Property-based: int and string keys, files sorted by key or not, a column missing from older files (a field
added in place), a column stored as a narrower type than declared, null values, entity times at midnights
and a microsecond around them, TTLs of whole and partial days, days with no file. Plus: the training set
takes this plan for a batch view kept as partition files, and falls back to DuckDB where a file does not fit.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_platform.compute import daily_join
from feature_platform.compute.point_in_time import ViewJoin, point_in_time_join

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)  # a midnight: day d's partition is stamped T0 + d days
DECLARED = {"a_int": pa.int64(), "b_float": pa.float64(), "c_str": pa.string(), "d_bool": pa.bool_()}
KEYS = {"int": [3, 1, 20, 7], "string": ["u1", "u2", "ü3", ""]}

day_rows = st.lists(st.fixed_dictionaries({
    "key": st.integers(0, 3),
    "a_int": st.one_of(st.none(), st.integers(-2**62, 2**62)),  # past float64's exact range: no float trip
    "b_float": st.one_of(st.none(), st.floats(-10, 10, allow_nan=False)),
    "c_str": st.one_of(st.none(), st.sampled_from(["x", "yy", "ß"])),
    "d_bool": st.one_of(st.none(), st.booleans()),
}), max_size=4)
day_file = st.fixed_dictionaries({
    "rows": day_rows,
    "order": st.sampled_from(["sorted", "sorted", "reversed"]),
    "without_c_str": st.booleans(),  # written before the field was added
    "a_int_as_int32": st.booleans(),
})
entity = st.fixed_dictionaries({
    "key": st.integers(0, 4),  # 4: a key no file holds
    "day": st.integers(0, 15),
    "offset_us": st.sampled_from([0, 0, 1, -1, 3_600_000_000, 86_399_999_999]),
})
ttls = st.sampled_from([timedelta(days=1), timedelta(days=3), timedelta(days=7), timedelta(hours=36),
                        timedelta(hours=12), timedelta(days=2, microseconds=1)])


def _write_days(tmp, days: dict[int, dict], keys: list) -> tuple[list[tuple[pd.Timestamp, str]], pa.Table]:
    """One Parquet file per day; returns the partitions and every stored row as one table (nulls where a file
    lacks a column), for the DuckDB plan."""
    key_type = pa.string() if isinstance(keys[0], str) else pa.int64()
    partitions, tables = [], []
    for day, spec in days.items():
        rows = {r["key"]: r for r in spec["rows"]}  # one row per key and partition
        ordered = sorted(rows, key=lambda k: keys[k], reverse=spec["order"] == "reversed")
        columns = {"user_id": pa.array([keys[k] for k in ordered], key_type)}
        for name, declared in DECLARED.items():
            if name == "c_str" and spec["without_c_str"]:
                continue
            kind = pa.int32() if name == "a_int" and spec["a_int_as_int32"] else declared
            values = [rows[k][name] for k in ordered]
            if kind == pa.int32():
                values = [None if v is None else v % 2**31 - 2**30 for v in values]
            columns[name] = pa.array(values, kind)
        stamp = pd.Timestamp(T0 + timedelta(days=day))
        path = str(tmp / f"{day:04d}.parquet")
        pq.write_table(pa.table(columns), path)
        partitions.append((stamp, path))
        n = len(ordered)
        full = {"user_id": columns["user_id"],
                "event_timestamp": pa.array([stamp] * n, pa.timestamp("us", "UTC"))}
        full |= {name: columns[name].cast(declared) if name in columns else pa.nulls(n, declared)
                 for name, declared in DECLARED.items()}
        tables.append(pa.table(full))
    schema = pa.schema({"user_id": key_type, "event_timestamp": pa.timestamp("us", "UTC")} | DECLARED)
    return partitions, pa.concat_tables(tables) if tables else schema.empty_table()


def _same(a, b) -> bool:
    if pd.isna(a) and pd.isna(b):
        return True
    if pd.isna(a) or pd.isna(b):
        return False
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


@settings(max_examples=150, deadline=None)
@given(key_kind=st.sampled_from(sorted(KEYS)), days=st.dictionaries(st.integers(0, 12), day_file, max_size=8),
       entities=st.lists(entity, min_size=1, max_size=25), ttl=ttls)
def test_reading_the_partition_files_equals_the_duckdb_daily_plan(tmp_path_factory, key_kind, days, entities, ttl):
    keys = KEYS[key_kind] + (["never"] if key_kind == "string" else [99])
    partitions, table = _write_days(tmp_path_factory.mktemp("days"), days, keys)
    entity_df = pd.DataFrame({
        "user_id": pd.Series([keys[e["key"]] for e in entities], dtype=object if key_kind == "string" else "int64"),
        "event_timestamp": [pd.Timestamp(T0 + timedelta(days=e["day"], microseconds=e["offset_us"]))
                            for e in entities],
    })
    got = daily_join.to_pandas(daily_join.join_partitions(entity_df["user_id"], entity_df["event_timestamp"],
                                                          partitions, "user_id", ttl, DECLARED))
    con = duckdb.connect()
    con.register("days_table", table)
    want = point_in_time_join(con, entity_df, [ViewJoin("days_table", "user_id", ttl, tuple(DECLARED),
                                                        tuple(DECLARED), unique=True, daily=True)])
    con.close()
    assert list(got.columns) == list(DECLARED) and len(got) == len(entity_df)
    for i in range(len(entity_df)):
        for f in DECLARED:
            assert _same(got[f].iloc[i], want[f].iloc[i]), (f, i, got[f].iloc[i], want[f].iloc[i])
    # Exact: ints stay ints (no float64 trip), whatever the nulls.
    assert str(got["a_int"].dtype) == "Int64" and str(got["d_bool"].dtype) == "boolean"


def test_no_partition_or_no_visible_one_gives_nulls_of_the_declared_types(tmp_path):
    entity_df = pd.DataFrame({"user_id": [1, 2], "event_timestamp": pd.to_datetime([T0, T0], utc=True)})
    for partitions in ([], [(pd.Timestamp(T0 + timedelta(days=5)), "never read")]):
        got = daily_join.join_partitions(entity_df["user_id"], entity_df["event_timestamp"], partitions, "user_id",
                                         timedelta(days=1), DECLARED)
        assert got.schema == pa.schema(DECLARED) and got.num_rows == 2
        assert all(got.column(f).null_count == 2 for f in DECLARED)


def test_a_file_the_plan_cannot_read_as_declared_is_refused_not_misread(tmp_path):
    path = tmp_path / "0000.parquet"
    pq.write_table(pa.table({"user_id": [1], "a_int": ["not a number"]}), path)
    entity_df = pd.DataFrame({"user_id": [1], "event_timestamp": pd.to_datetime([T0], utc=True)})
    with pytest.raises(daily_join.Unsupported, match="a_int"):
        daily_join.join_partitions(entity_df["user_id"], entity_df["event_timestamp"], [(pd.Timestamp(T0), str(path))],
                                   "user_id", timedelta(days=1), {"a_int": pa.int64()})


def test_entity_times_past_nanoseconds_are_left_to_the_general_plan():
    times = pd.Series(pd.array([pd.Timestamp("2500-01-01", tz="UTC")], dtype="datetime64[us, UTC]"))
    with pytest.raises(daily_join.Unsupported, match="nanoseconds"):
        daily_join.join_partitions(pd.Series([1]), times, [], "user_id", timedelta(days=1), DECLARED)


def test_keys_sorted_in_the_file_are_found_by_search_and_unsorted_by_hash():
    stored = pa.chunked_array([pa.array([1, 5, 9])])
    assert daily_join._positions(stored, pa.array([9, 2, 1, 10])).tolist() == [2, -1, 0, -1]
    unsorted = pa.chunked_array([pa.array([9, 1, 5])])
    assert daily_join._positions(unsorted, pa.array([9, 2, 1, 10])).tolist() == [0, -1, 1, -1]
    assert daily_join._positions(pa.chunked_array([pa.array(["b", "a"])]), pa.array(["a", "c"])).tolist() == [1, -1]
    assert np.asarray(daily_join._positions(pa.chunked_array([pa.array([], pa.int64())]), pa.array([1]))).tolist() == [-1]


def test_keys_of_another_integer_type_are_compared_exactly_or_left_to_the_general_plan():
    big = 2**62 + 1  # past float64's exact integers: a comparison through floats would match its neighbour
    stored = pa.chunked_array([pa.array([big - 1, big, big + 1], pa.int64())])
    assert daily_join._positions(stored, pa.array([big + 1, big, 5], pa.uint64())).tolist() == [2, 1, -1]
    with pytest.raises(daily_join.Unsupported, match="cannot be looked up"):
        daily_join._positions(stored, pa.array([2**64 - 1], pa.uint64()))
