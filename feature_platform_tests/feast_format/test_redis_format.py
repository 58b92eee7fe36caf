"""The fast Redis writer produces Feast's exact bytes, stays newest-wins, and stock Feast reads it back."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import redis
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

import feature_platform as fp
from feature_platform.feast_format import codec as fmt
from feature_platform.feast_format.redis_features import RedisFeatures
from feature_platform.spec import Entity, FeatureViewSpec, Field

_FEAST_TYPE = {"int64": ValueType.INT64, "float32": ValueType.FLOAT, "float64": ValueType.DOUBLE,
               "string": ValueType.STRING, "bool": ValueType.BOOL}
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def feast_bytes(values: list, dtype: str) -> list[bytes]:
    return [v.SerializeToString() for v in python_values_to_proto_values(values, _FEAST_TYPE[dtype])]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), INT64), min_size=1, max_size=30))
def test_int64_values_are_encoded_exactly_as_feast_does(values):
    series = pd.Series(values, dtype="Int64")
    assert fmt.encode_values(series, "int64") == feast_bytes([None if v is None else v for v in values], "int64")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=False, width=32)), min_size=1, max_size=30),
       st.sampled_from(["float32", "float64"]))
def test_float_values_are_encoded_exactly_as_feast_does(values, dtype):
    series = pd.Series(values, dtype=dtype)
    assert fmt.encode_values(series, dtype) == feast_bytes(values, dtype)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=200)), min_size=1, max_size=30))
def test_string_values_are_encoded_exactly_as_feast_does(values):
    assert fmt.encode_values(pd.Series(values, dtype=object), "string") == feast_bytes(values, "string")


def test_bool_values_and_nan_match_feast():
    assert fmt.encode_values(pd.Series([True, False, None], dtype="boolean"), "bool") == \
        feast_bytes([True, False, None], "bool")
    # pandas cannot tell NaN from missing; both become Feast's empty Value.
    assert fmt.encode_values(pd.Series([math.nan, 1.0]), "float64") == [b"", ValueProto(double_val=1.0).SerializeToString()]


@settings(max_examples=60, deadline=None)
@given(st.lists(INT64, min_size=1, max_size=20), st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=20))
def test_entity_keys_and_field_keys_match_feast(ints, strings):
    def feast_key(value, field):
        proto = EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(**{field: value})])
        return _redis_key("proj", proto, entity_key_serialization_version=3)

    assert fmt.entity_keys("user_id", "int64", ints, "proj") == [feast_key(v, "int64_val") for v in ints]
    assert fmt.entity_keys("user_id", "string", strings, "proj") == [feast_key(v, "string_val") for v in strings]
    assert fmt.field_key("user_activity", "sessions_7d") == _mmh3("user_activity:sessions_7d")
    # one key at a time (reads of a few entities), numpy integers included
    assert [fmt.entity_key("user_id", "int64", v, "proj") for v in ints] == [feast_key(v, "int64_val") for v in ints]
    assert fmt.entity_key("user_id", "int64", np.int64(ints[0]), "proj") == feast_key(ints[0], "int64_val")
    assert [fmt.entity_key("user_id", "string", v, "proj") for v in strings] == [feast_key(v, "string_val") for v in strings]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4_102_444_800 * 10**9), min_size=1, max_size=20))
def test_timestamps_match_protobuf_and_decode_back(nanos):
    stamps = pd.Series(pd.to_datetime(nanos, unit="ns", utc=True))
    expected = []
    for n in nanos:
        ts = Timestamp(seconds=n // 10**9, nanos=n % 10**9)
        expected.append(ts.SerializeToString())
    encoded = fmt.encode_timestamps(stamps)
    assert encoded == expected
    assert [fmt.decode_timestamp(b) for b in encoded] == nanos


# --- against the real Redis ---------------------------------------------------------------------

SPEC = FeatureViewSpec(
    name="format_probe", description="every dtype", owner="platform",
    entity=Entity(name="user", join_key="user_id", dtype="int64"),
    fields=(Field("i", "int64", "", nullable=True), Field("f", "float32", "", nullable=True),
            Field("d", "float64", "", nullable=True), Field("s", "string", "", nullable=True),
            Field("b", "bool", "", nullable=True)),
    push_source="format_probe_events", ttl=pd.Timedelta(days=1).to_pytimedelta(), freshness_sla=pd.Timedelta(days=1).to_pytimedelta(), version=1,
)


def frame(users, day: str, seed: int) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": pd.Series(users, dtype="int64"),
        "i": pd.Series([seed * 1000 + u if u % 5 else None for u in users], dtype="Int64"),
        "f": pd.Series([u / 3 + seed if u % 7 else None for u in users], dtype="float32"),
        "d": pd.Series([u * 1e-3 - seed for u in users], dtype="float64"),
        "s": [f"model-{(u + seed) % 3}-é" if u % 4 else None for u in users],
        "b": pd.Series([bool((u + seed) % 2) for u in users], dtype="boolean"),
        "event_timestamp": pd.Timestamp(day, tz="UTC"),
    })


STRING_KEYED = dataclasses.replace(SPEC, name="format_probe_text", push_source="format_probe_text_events",
                                   entity=Entity(name="customer", join_key="user_id", dtype="string"))


@pytest.mark.services
@pytest.mark.parametrize("key_dtype", ["int64", "string"])
def test_writer_bytes_equal_feast_write_and_feast_reads_them(services_settings, key_dtype):
    platform = fp.FeaturePlatform(services_settings)
    store = platform.runtime.feast
    client = _redis(services_settings)
    from feature_platform.derive.feast_objects import feast_objects

    spec = SPEC if key_dtype == "int64" else STRING_KEYED
    store.apply(feast_objects([spec], services_settings, []))
    rows = frame(range(1, 60), "2026-03-02T00:00:00.123456Z", seed=1)
    if key_dtype == "string":  # text keys, odd ones included: Feast's key serialization of strings
        rows["user_id"] = [f"c-{u}" if u % 3 else f"ç {u}/é" for u in rows["user_id"]]
        rows.loc[0, "user_id"] = ""

    store.write_to_online_store(spec.name, rows.assign(created_timestamp=rows["event_timestamp"]))
    feast_hashes = {k: client.hgetall(k) for k in client.keys("*") if not k.startswith(b"feature_platform:")}
    client.flushdb()
    written = RedisFeatures(client, store.config.project).write(spec, rows)
    ours = {k: client.hgetall(k) for k in client.keys("*")}
    assert written == len(rows)
    assert ours == feast_hashes  # byte for byte: keys, field names, values, timestamps

    response = store.get_online_features([f"{spec.name}:{f.name}" for f in spec.fields],
                                         [{"user_id": u} for u in rows["user_id"]]).to_df()
    for f in spec.fields:
        got, want = response[f.name], rows[f.name]
        assert got.isna().tolist() == want.isna().tolist(), f.name
        if f.dtype == "float32":
            assert (got[want.notna()].astype("float32").to_numpy() == want.dropna().to_numpy()).all()
        else:
            assert got[want.notna()].tolist() == want.dropna().tolist(), f.name


@pytest.mark.services
def test_writer_is_newest_wins_without_reading_first(services_settings):
    platform = fp.FeaturePlatform(services_settings)
    client = _redis(services_settings)
    writer = RedisFeatures(client, platform.runtime.feast.config.project)
    users = list(range(1, 11))
    assert writer.write(SPEC, frame(users, "2026-03-05", seed=5)) == 10
    # Older rows are skipped, a tie rewrites (a re-run replaces its own partition), newer rows win.
    assert writer.write(SPEC, frame(users[:4], "2026-03-04", seed=4)) == 0
    assert writer.write(SPEC, frame(users[4:6], "2026-03-05", seed=55)) == 2
    assert writer.write(SPEC, frame(users[6:], "2026-03-06", seed=6)) == 4
    # Two rows of one entity in a batch: the newer one stays, whatever their order.
    dup = pd.concat([frame([1], "2026-03-09", seed=9), frame([1], "2026-03-08", seed=8)])
    assert writer.write(SPEC, dup) == 1
    stamps, values = writer.read(SPEC, users, ["i", "d"])
    seeds = [9, 5, 5, 5, 55, 55, 6, 6, 6, 6]
    days = ["2026-03-09"] + ["2026-03-05"] * 5 + ["2026-03-06"] * 4
    assert stamps == [pd.Timestamp(d, tz="UTC").value for d in days]
    assert [v[1] for v in values] == [u * 1e-3 - s for u, s in zip(users, seeds)]
    assert [v[0] for v in values] == [s * 1000 + u if u % 5 else None for u, s in zip(users, seeds)]
    # A missing entity reads as absent.
    assert writer.read(SPEC, [999], ["i"]) == ([None], [[None]])


@pytest.mark.services
def test_writer_reloads_its_script_after_a_flush(services_settings):
    client = _redis(services_settings)
    writer = RedisFeatures(client, "proj")
    assert writer.write(SPEC, frame([1, 2], "2026-03-05", seed=1)) == 2
    client.script_flush()
    assert writer.write(SPEC, frame([1, 2, 3], "2026-03-06", seed=2)) == 3
    assert writer.read(SPEC, [3], ["s"])[1] == [["model-2-é"]]


# --- decoding: remembered by bytes, equal to protobuf's parse ----------------------------------------------

def _value_bytes(kind: str, v) -> bytes:
    return ValueProto(**{kind: v}).SerializeToString()


any_value = st.one_of(
    INT64.map(lambda v: _value_bytes("int64_val", v)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: _value_bytes("int32_val", v)),
    st.floats(width=32, allow_nan=True).map(lambda v: _value_bytes("float_val", v)),
    st.floats(allow_nan=True).map(lambda v: _value_bytes("double_val", v)),
    st.text(max_size=12).map(lambda v: _value_bytes("string_val", v)),
    st.booleans().map(lambda v: _value_bytes("bool_val", v)),
    st.just(ValueProto(null_val=0).SerializeToString()),
    st.binary(max_size=12),  # anything at all: decoded as protobuf decodes it, or refused as it refuses it
)


def _parsed(raw):
    try:
        return ("ok", fmt.parse_value(raw) if raw else None)
    except Exception as exc:  # noqa: BLE001 - the same refusal is expected
        return ("error", type(exc))


def _decoded(raw):
    try:
        return ("ok", fmt.decode_value(raw))
    except Exception as exc:  # noqa: BLE001
        return ("error", type(exc))


def _equal(a, b) -> bool:
    if a[0] == "ok" and b[0] == "ok" and isinstance(a[1], float) and isinstance(b[1], float):
        return (math.isnan(a[1]) and math.isnan(b[1])) or a[1] == b[1]
    return a == b and type(a[1]) is type(b[1])


@settings(max_examples=300, deadline=None)
@given(st.lists(any_value, min_size=1, max_size=20))
def test_decoding_equals_protobufs_parse_first_time_and_remembered(raws):
    for _ in range(2):  # the second pass reads what the first remembered
        for raw in raws:
            assert _equal(_decoded(raw), _parsed(raw)), raw
    assert fmt.decode_value(None) is None and fmt.decode_value(b"") is None


def test_what_decoding_remembers_is_bounded(monkeypatch):
    monkeypatch.setattr(fmt, "_DECODED_MAX", 8)
    monkeypatch.setattr(fmt, "_DECODED", {})
    monkeypatch.setattr(fmt, "_STAMPS", {})
    raws = [_value_bytes("int64_val", v) for v in range(50)]
    stamps = [Timestamp(seconds=s, nanos=7).SerializeToString() for s in range(50)]
    for _ in range(2):
        assert [fmt.decode_value(r) for r in raws] == list(range(50))
        assert [fmt.decode_timestamp(s) for s in stamps] == [s * 10**9 + 7 for s in range(50)]
    assert len(fmt._DECODED) <= 8 and len(fmt._STAMPS) <= 8


# --- the one-entity read: one packed HMGET on a pooled connection --------------------------------

@pytest.mark.services
def test_a_one_entity_read_is_one_packed_hmget_and_rides_out_a_dropped_connection(services_settings, monkeypatch):
    client = _redis(services_settings)
    features = RedisFeatures(client, "proj")
    rows = frame([1, 2, 3, 4], "2026-03-05", seed=3)
    assert features.write(SPEC, rows) == 4
    names = [f.name for f in SPEC.fields]
    want = features.read_many_columns([(SPEC, [1, 2, 3, 4, 99], names, None)])[0]  # the pipelined read
    for i, user in enumerate([1, 2, 3, 4, 99]):
        stamps, values = features.read_one(SPEC, user, names)
        assert stamps == [want[0][i]] and values == [[column[i]] for column in want[1]], user
    # The connection the reads keep killed by the server (a restart, a failover): the read reconnects and answers.
    from feature_platform.compat import redis_internals

    pooled = _kept_connection_id(client)
    other = redis.Redis(host=services_settings.redis_host, port=services_settings.redis_port)
    assert other.client_kill_filter(_id=pooled) == 1
    assert features.read_one(SPEC, 2, ["i"]) == ([want[0][1]], [[want[1][0][1]]])
    assert _kept_connection_id(client) != pooled  # the dead one was given back, not kept
    # A connection lost mid-command is retried by the client's own call (its retries within the read budget);
    # a timeout is not: the read's one wait may have taken its whole budget.
    retried = []
    hmget = client.hmget
    client.hmget = lambda *a: retried.append(a) or hmget(*a)
    for error in (redis.exceptions.ConnectionError("lost"), redis.exceptions.TimeoutError("no answer")):
        def fail(*_, error=error):
            raise error

        monkeypatch.setattr(redis_internals, "call_packed", fail)
        if isinstance(error, redis.exceptions.TimeoutError):
            with pytest.raises(redis.exceptions.TimeoutError):
                features.read_one(SPEC, 2, ["i"])
        else:
            assert features.read_one(SPEC, 2, ["i"]) == ([want[0][1]], [[want[1][0][1]]])
    assert len(retried) == 1
    del client.hmget
    monkeypatch.undo()
    # An error reply is raised, and the connection it came on is not handed out again with a reply unread.
    client.set(b"not-a-hash", b"x")
    before = _kept_connection_id(client)
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        redis_internals.call_packed(client, b"*3\r\n$5\r\nHMGET\r\n$10\r\nnot-a-hash\r\n$1\r\na\r\n")
    assert features.read_one(SPEC, 3, ["i"]) == ([want[0][2]], [[want[1][0][2]]])
    assert _kept_connection_id(client) != before


def _redis(settings, **options) -> redis.Redis:
    """A client of the test's Redis database."""
    return redis.Redis(host=settings.redis_host, port=settings.redis_port, db=settings.redis_db, **options)


def _kept_connection_id(client) -> int:
    """The Redis client id of the connection the calling thread's packed calls on `client` use."""
    from feature_platform.compat import redis_internals

    return redis_internals.call_packed(client, b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n")


@pytest.mark.services
def test_each_thread_keeps_one_connection_for_its_packed_reads_and_gives_it_back_when_it_ends(services_settings):
    import gc
    import multiprocessing
    import threading
    import time
    import weakref

    client = _redis(services_settings)
    features = RedisFeatures(client, "proj")
    assert features.write(SPEC, frame([1, 2], "2026-03-05", seed=3)) == 2
    names = [f.name for f in SPEC.fields]
    want = features.read_many_columns([(SPEC, [1, 2], names, None)])[0]
    mine = _kept_connection_id(client)
    for _ in range(20):  # one connection, read after read, answers intact
        assert features.read_one(SPEC, 2, names) == ([want[0][1]], [[column[1]] for column in want[1]])
    assert _kept_connection_id(client) == mine

    seen = {}

    def reader(name):
        seen[name] = [_kept_connection_id(client), features.read_one(SPEC, 1, names), _kept_connection_id(client)]

    first = threading.Thread(target=reader, args=("first",))
    first.start()
    first.join()
    theirs, answer, again = seen["first"]
    assert theirs == again != mine and answer == ([want[0][0]], [[column[0]] for column in want[1]])
    del first
    gc.collect()  # the ended thread's data goes: its connection is back in the pool, and the next thread's
    second = threading.Thread(target=reader, args=("second",))
    second.start()
    second.join()
    assert seen["second"][0] == theirs

    # A forked child checks out its own connection (the parent's socket is never read by two processes).
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=lambda: child_end.send([_kept_connection_id(client),
                                                           features.read_one(SPEC, 2, names)]))
    child.start()
    child_id, child_answer = parent_end.recv()
    child.join(10)
    assert child.exitcode == 0 and child_id not in (mine, theirs)
    assert child_answer == ([want[0][1]], [[column[1]] for column in want[1]])
    assert _kept_connection_id(client) == mine and features.read_one(SPEC, 1, names)[0] == [want[0][0]]

    # A client the caller drops is not kept alive by the threads that read through it: its connection is closed.
    dropped = _redis(services_settings, client_name="kept-by-a-dropped-client")
    _kept_connection_id(dropped)
    assert [c for c in client.client_list() if c.get("name") == "kept-by-a-dropped-client"]
    pool = weakref.ref(dropped.connection_pool)
    del dropped
    gc.collect()
    assert pool() is None
    deadline = time.monotonic() + 5  # the server sees the socket closed on its next turn
    while [c for c in client.client_list() if c.get("name") == "kept-by-a-dropped-client"]:
        assert time.monotonic() < deadline, "the dropped client's kept connection is still open"
        time.sleep(0.01)
