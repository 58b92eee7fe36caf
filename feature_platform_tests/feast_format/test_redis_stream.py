"""The writer's RESP framing (numpy, a chunk at a time) equals hiredis packing `codec`'s cells, which equal Feast's."""

from __future__ import annotations

import dataclasses

import hiredis
import numpy as np
import pandas as pd
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_platform.feast_format import codec, resp
from feature_platform.feast_format import redis_features as rf
from feature_platform.spec import Field
from feature_platform_tests.feast_format.test_redis_format import SPEC, STRING_KEYED, frame

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
NANOS = st.integers(min_value=-(2**62), max_value=2**62)


def packed(cells: list[bytes]) -> bytes:
    """The definition: hiredis frames each cell as a bulk string (minus the array header)."""
    whole = hiredis.pack_command(tuple(cells))
    return whole[len(b"*%d\r\n" % len(cells)):]


def assert_framed(parts: list[resp.Cells], cells: list[bytes]) -> None:
    data, offsets = resp.squeeze(parts)
    assert data.tobytes() == packed(cells)
    assert [data[offsets[i]:offsets[i + 1]].tobytes() for i in range(len(cells))] == [packed([c]) for c in cells]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), INT64), min_size=1, max_size=60), st.sampled_from(["Int64", "object"]))
def test_int64_cells_frame_as_codec_encodes(values, dtype):
    series = pd.Series(values, dtype=dtype)
    assert_framed(resp.value_cells(series, "int64"), codec.encode_values(series, "int64"))
    if None not in values:
        plain = pd.Series(values, dtype="int64")
        assert_framed(resp.value_cells(plain, "int64"), codec.encode_values(plain, "int64"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(width=32)), min_size=1, max_size=60),
       st.sampled_from(["float32", "float64"]))
def test_float_cells_frame_as_codec_encodes(values, dtype):
    series = pd.Series(values, dtype=dtype)
    assert_framed(resp.value_cells(series, dtype), codec.encode_values(series, dtype))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=200)), min_size=1, max_size=60))
def test_string_cells_frame_as_codec_encodes(values):
    series = pd.Series(values, dtype=object)
    assert_framed(resp.value_cells(series, "string"), codec.encode_values(series, "string"))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.none(), st.booleans()), min_size=1, max_size=60))
def test_bool_cells_frame_as_codec_encodes(values):
    series = pd.Series(values, dtype="boolean")
    assert_framed(resp.value_cells(series, "bool"), codec.encode_values(series, "bool"))


@settings(max_examples=60, deadline=None)
@given(st.lists(NANOS, min_size=1, max_size=60), st.sampled_from(["ns", "us", "text"]))
def test_timestamp_cells_frame_as_codec_encodes(nanos, unit):
    stamps = pd.Series(pd.to_datetime(nanos, unit="ns", utc=True))
    if unit == "us":
        stamps = pd.Series(pd.to_datetime([n // 1000 * 1000 for n in nanos], unit="ns", utc=True)).dt.as_unit("us")
    elif unit == "text":
        stamps = pd.Series([str(s) for s in stamps], dtype=object)
    assert_framed(resp.timestamp_cells(stamps), codec.encode_timestamps(stamps))


@settings(max_examples=60, deadline=None)
@given(st.lists(INT64, min_size=1, max_size=40), st.lists(st.text(max_size=40), min_size=1, max_size=40))
def test_key_cells_frame_as_codec_encodes(ints, strings):
    assert_framed(resp.key_cells("user_id", "int64", pd.Series(ints, dtype="int64"), "proj"),
                  codec.entity_keys("user_id", "int64", ints, "proj"))
    assert_framed(resp.key_cells("user_id", "string", pd.Series(strings, dtype=object), "proj"),
                  codec.entity_keys("user_id", "string", strings, "proj"))


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=130), st.integers(min_value=0, max_value=3), st.booleans(),
       st.integers(min_value=1, max_value=7))
def test_framed_script_calls_equal_hiredis_packing(users, seed, text_keys, batch_rows):
    """The whole stream of a chunk (script calls of `batch_rows` rows) equals hiredis packing `codec`'s cells."""
    spec = STRING_KEYED if text_keys else SPEC
    rows = frame(list(range(1, users + 1)), "2026-03-02T00:00:00.123456Z", seed)
    rows["event_timestamp"] = rows["event_timestamp"] + pd.to_timedelta(np.arange(users) % 3 - 1, unit="s")
    if text_keys:
        rows["user_id"] = [f"c-{u}" if u % 3 else f"ç {u}/é" for u in rows["user_id"]]
    writer = rf.RedisFeatures.__new__(rf.RedisFeatures)
    writer.project = "proj"
    argv = [codec.timestamp_field(spec.name), b"5", *(codec.field_key(spec.name, f.name) for f in spec.fields)]
    old = rf.BATCH_ROWS
    rf.BATCH_ROWS = batch_rows
    try:
        assert writer._frame(spec, rows, argv, b"f" * 40) == writer._pack(spec, rows, argv, b"f" * 40)
        rows.loc[rows.index[-1], "s"] = "x" * (resp.MAX_CELL + 1)  # too wide to frame: hiredis packs it
        assert writer._frame(spec, rows, argv, b"f" * 40) == writer._pack(spec, rows, argv, b"f" * 40)
    finally:
        rf.BATCH_ROWS = old


@pytest.mark.services
def test_views_of_many_features_are_written_newest_wins(services_settings):
    """Past the features a spelled-out HSET takes, the script keeps HSET's arguments in a table."""
    client = redis.Redis(host=services_settings.redis_host, port=services_settings.redis_port,
                         db=services_settings.redis_db)
    client.flushdb()
    n = rf._MAX_SPELLED + 5
    wide = dataclasses.replace(SPEC, name="wide_probe", fields=tuple(Field(f"x{i}", "int64", "", nullable=True)
                                                                     for i in range(n)))
    writer = rf.RedisFeatures(client, "proj")

    def rows(day, offset):
        return pd.DataFrame({"user_id": [1, 2], **{f"x{i}": [i + offset, -i - offset] for i in range(n)},
                             "event_timestamp": pd.Timestamp(day, tz="UTC")})

    assert writer.write(wide, rows("2026-03-05", 0)) == 2
    assert writer.write(wide, rows("2026-03-04", 100)) == 0  # older: skipped
    assert writer.write(wide, rows("2026-03-06", 200)) == 2
    stamps, values = writer.read(wide, [1, 2], [f"x{i}" for i in range(n)])
    assert stamps == [pd.Timestamp("2026-03-06", tz="UTC").value] * 2
    assert values == [[i + 200 for i in range(n)], [-i - 200 for i in range(n)]]
