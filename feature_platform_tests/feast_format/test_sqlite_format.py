"""The embedded profile's SQLite writer stores exactly Feast's rows, stays newest-wins, and Feast reads it."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import pytz
from chat_activity.user_activity import SPEC
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from feature_platform.feast_format import codec as fmt
from feature_platform.feast_format.sqlite_features import SqliteFeatures, value_texts
from feature_platform.platform import FeaturePlatform
from feature_platform.runtime import Runtime
from feature_platform_tests.helpers import make_embedded_settings

_FEAST_TYPE = {"int64": ValueType.INT64, "float32": ValueType.FLOAT, "float64": ValueType.DOUBLE,
               "string": ValueType.STRING, "bool": ValueType.BOOL}
VALUES = {
    "int64": st.integers(-(2**63), 2**63 - 1),
    "float32": st.floats(allow_nan=False, allow_infinity=False, width=32),
    "float64": st.floats(allow_nan=False, allow_infinity=False),
    "string": st.text(max_size=50),
    "bool": st.booleans(),
}
PANDAS = {"int64": "Int64", "float32": "float32", "float64": "float64", "string": object, "bool": "boolean"}


@settings(max_examples=40, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(sorted(VALUES)))
def test_value_text_is_what_feast_stores(data, dtype):
    values = data.draw(st.lists(st.one_of(st.none(), VALUES[dtype]), min_size=1, max_size=20))
    protos = python_values_to_proto_values(values, _FEAST_TYPE[dtype])
    assert value_texts(pd.Series(values, dtype=PANDAS[dtype]), dtype) == [extract_text_and_num(p, False)[0] for p in protos]


@settings(max_examples=40, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(sorted(VALUES)))
def test_value_text_of_a_large_column_made_once_per_distinct_value_is_what_feast_stores(data, dtype):
    from feature_platform.feast_format.codec import _SMALL as SMALL

    pool = data.draw(st.lists(st.one_of(st.none(), VALUES[dtype]), min_size=1, max_size=6))
    values = data.draw(st.lists(st.sampled_from(pool), min_size=SMALL + 1, max_size=3 * SMALL))  # repeats
    protos = python_values_to_proto_values(values, _FEAST_TYPE[dtype])
    assert value_texts(pd.Series(values, dtype=PANDAS[dtype]), dtype) == [extract_text_and_num(p, False)[0] for p in protos]


def frame(users, day: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(users)
    duration = rng.uniform(0, 900, n).astype("float32")
    duration[rng.random(n) < 0.3] = np.nan
    return pd.DataFrame({
        "user_id": np.asarray(users, dtype="int64"),
        "sessions_7d": rng.integers(0, 9, n), "avg_session_duration_sec": duration,
        "messages_sent_7d": rng.integers(0, 99, n), "tools_used_7d": rng.integers(0, 9, n),
        "preferred_model": rng.choice(["claude-haiku", "gpt-4o", "unknown", "ünïcode"], n).astype(object),
        "total_tokens_7d": rng.integers(0, 2**40, n),
        "event_timestamp": pd.Timestamp(day, tz="UTC"),
        "created_timestamp": pd.Timestamp("2026-03-01T05:06:07.891Z"),
    })


def table_rows(path, table="feature_platform_user_activity"):
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT entity_key, feature_name, value, value_text, vector_value, event_ts, created_ts "
                            f"FROM {table} ORDER BY entity_key, feature_name").fetchall()


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory):
    """Two embedded deployments: one written by stock Feast, one by the platform's writer."""
    out = []
    for name in ("feast", "platform"):
        rt = Runtime(make_embedded_settings(tmp_path_factory.mktemp(name)))
        rt.apply()
        out.append(rt)
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(users=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=40, unique=True), seed=st.integers(0, 99))
@example(users=[7], seed=0)  # one row: its parameters made alone
@example(users=list(range(-50, 150)), seed=1)  # over codec._SMALL: value texts made per distinct value
def test_rows_are_identical_to_feast_write_to_online_store(runtimes, users, seed):
    feast_rt, platform_rt = runtimes
    rows = frame(users, "2026-03-02", seed)
    feast_rt.feast.write_to_online_store("user_activity", rows)
    SqliteFeatures(platform_rt.settings.feast_dir / "online.db", "feature_platform").write(SPEC, rows)
    assert table_rows(platform_rt.settings.feast_dir / "online.db") == table_rows(feast_rt.settings.feast_dir / "online.db")


def test_newest_wins_ties_rewrite_and_feast_reads_it_back(tmp_path):
    settings_ = make_embedded_settings(tmp_path)
    platform = FeaturePlatform(settings_)
    online = platform.runtime.online
    newer, older = frame([1, 2, 3], "2026-03-05", seed=1), frame([1, 2, 3, 4], "2026-03-02", seed=2)
    assert online.write(SPEC, newer) == 3
    assert online.write(SPEC, older) == 1  # only user 4, which had nothing newer
    tie = newer.assign(total_tokens_7d=[7, 8, 9])
    assert online.write(SPEC, tie) == 3  # a re-run of the same partition replaces its values

    features = [f"user_activity:{f}" for f in SPEC.feature_names]
    got = platform.online_features(features, [{"user_id": u} for u in (1, 2, 3, 4, 5)], with_metadata=True,
                                   now=datetime(2026, 3, 6, tzinfo=timezone.utc))
    assert got["total_tokens_7d"].tolist()[:3] == [7, 8, 9]
    assert got["total_tokens_7d__status"].tolist() == ["present"] * 4 + ["missing"]
    assert got["preferred_model"].tolist()[:4] == [*newer["preferred_model"], older["preferred_model"].iloc[3]]
    want = pd.array([*newer["avg_session_duration_sec"], older["avg_session_duration_sec"].iloc[3], None], dtype="Float32")
    pd.testing.assert_extension_array_equal(pd.array(got["avg_session_duration_sec"], dtype="Float32"), want)


@pytest.fixture(scope="module")
def small_limit_platform(tmp_path_factory):
    """An embedded platform with 1,000 users online, whose Feast SQLite connection binds at most 999 variables
    per statement: SQLite's limit before 3.32 (32,766 since, 250,000 on Debian's build), so a read over it
    fails the way a 260,000-entity read failed on this machine, at a size a test can afford."""
    platform = FeaturePlatform(make_embedded_settings(tmp_path_factory.mktemp("limit")))
    rows = frame(range(0, 3000, 3), "2026-03-05", seed=4)
    assert platform.runtime.online.write(SPEC, rows) == len(rows)
    feast = platform.runtime.feast
    feast._get_provider().online_store._get_conn(feast.config).setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    return platform, rows.set_index("user_id")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(users=st.one_of(st.lists(st.integers(-5, 3005), max_size=2500),
                       st.integers(0, 4000).map(lambda n: [u % 3100 for u in range(n)])))
def test_reads_larger_than_sqlites_variable_limit_are_read_in_chunks(small_limit_platform, users):
    """Issue 19 item 8: an embedded read binds one SQL variable per entity in Feast's query; more entities than
    SQLite's limit raised a raw `sqlite3.OperationalError: too many SQL variables`. Any number of rows, stored
    or not, repeated or not, comes back row for row."""
    platform, stored = small_limit_platform
    features = ["user_activity:total_tokens_7d", "user_activity:preferred_model"]
    got = platform.online_features(features, [{"user_id": u} for u in users], with_metadata=True, output="dict",
                                   now=datetime(2026, 3, 6, tzinfo=timezone.utc))
    assert got.get("user_id", []) == users  # (no rows: no entity column)
    present = [u in stored.index for u in users]
    assert got["total_tokens_7d__status"] == ["present" if p else "missing" for p in present]
    assert got["total_tokens_7d"] == [int(stored.at[u, "total_tokens_7d"]) if p else None for u, p in zip(users, present)]
    assert got["preferred_model"] == [stored.at[u, "preferred_model"] if p else None for u, p in zip(users, present)]


SHOP = Path(__file__).resolve().parents[1] / "repos" / "shop"
KEY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@pytest.fixture(scope="module")
def string_key_runtimes(tmp_path_factory):
    """Two embedded deployments of the shop repository (string customer keys): stock Feast's writer, the platform's."""
    out = []
    for name in ("feast", "platform"):
        rt = Runtime(make_embedded_settings(tmp_path_factory.mktemp(name)).with_(repo=str(SHOP)))
        rt.apply()
        out.append(rt)
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(customers=st.lists(KEY_TEXT, min_size=1, max_size=30, unique=True), seed=st.integers(0, 99))
def test_string_keyed_rows_are_identical_to_feast_write_to_online_store(string_key_runtimes, customers, seed):
    feast_rt, platform_rt = string_key_runtimes
    cart = platform_rt.repo.view("customer_cart")
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame({"customer_id": pd.Series(customers, dtype=object),
                         "cart_items": rng.integers(0, 9, len(customers)),
                         "cart_value": rng.uniform(0, 99, len(customers)),
                         "event_timestamp": pd.Timestamp("2026-03-02T10:00:00Z"),
                         "created_timestamp": pd.Timestamp("2026-03-02T10:00:01Z")})
    feast_rt.feast.write_to_online_store("customer_cart", rows)
    SqliteFeatures(platform_rt.settings.feast_dir / "online.db", "feature_platform").write(cart, rows)
    table = "feature_platform_customer_cart"
    assert table_rows(platform_rt.settings.feast_dir / "online.db", table) == \
        table_rows(feast_rt.settings.feast_dir / "online.db", table)


def test_an_entity_given_twice_in_one_write_keeps_its_last_row(tmp_path):
    """Rows go to SQLite in entity-key order, one statement per entity; an entity's rows keep their order, so
    its last row of the write is the one stored (as a cell at a time, in input order, stored it)."""
    platform = FeaturePlatform(make_embedded_settings(tmp_path))
    rows = pd.concat([frame([5, 3, 9], "2026-03-05", seed=1), frame([3, 5], "2026-03-05", seed=2)], ignore_index=True)
    assert platform.runtime.online.write(SPEC, rows) == 5  # a tie rewrites: every row is written
    got = platform.online_features([f"user_activity:{f}" for f in SPEC.feature_names],
                                   [{"user_id": u} for u in (3, 5, 9)], now=datetime(2026, 3, 6, tzinfo=timezone.utc))
    last = rows.drop_duplicates("user_id", keep="last").set_index("user_id").loc[[3, 5, 9]]
    assert got["total_tokens_7d"].tolist() == last["total_tokens_7d"].tolist()
    assert got["preferred_model"].tolist() == last["preferred_model"].tolist()


@pytest.mark.parametrize("path", ["frame", "rows"])
def test_an_entity_twice_in_one_second_of_one_write_keeps_its_newer_row(tmp_path, path):
    """The table keeps whole seconds, so an entity's two rows of one second tie there; the write orders them by
    their full event time, so the newer one is stored whichever comes first in the write (a fuzzed push found the
    older one kept). The frame path (`write`) and the low-latency one (`write_rows`) alike."""
    platform = FeaturePlatform(make_embedded_settings(tmp_path))
    second = pd.Timestamp("2026-03-05T10:00:00Z")
    rows = frame([3, 3, 5, 3, 5], "2026-03-05", seed=3).assign(event_timestamp=[
        second + pd.Timedelta(microseconds=900), second + pd.Timedelta(microseconds=1), second + pd.Timedelta(1, "s"),
        second, second + pd.Timedelta(milliseconds=1500)])
    newest = rows.loc[[0, 4]].set_index("user_id")
    platform.apply()  # the view's table exists, as after any deployment's first apply
    features = platform.runtime.online.features
    if path == "frame":
        features.write(SPEC, rows)
    else:
        names = [f.name for f in SPEC.fields]
        features.write_rows(SPEC, rows["user_id"].tolist(), [t.value for t in rows["event_timestamp"]],
                            {n: rows[n].astype(object).where(rows[n].notna(), None).tolist() for n in names},
                            pd.Timestamp("2026-03-05T11:00:00Z").value)
    got = platform.online_features([f"user_activity:{f}" for f in SPEC.feature_names],
                                   [{"user_id": u} for u in (3, 5)], now=datetime(2026, 3, 6, tzinfo=timezone.utc))
    assert got["total_tokens_7d"].tolist() == newest["total_tokens_7d"].tolist()
    assert got["preferred_model"].tolist() == newest["preferred_model"].tolist()


@settings(max_examples=60, deadline=None)
@given(keys=st.one_of(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=40),
                      st.lists(st.integers(0, 30), max_size=40).map(sorted),
                      st.lists(st.integers(0, 30), unique=True, max_size=40).map(sorted)))
def test_the_one_row_per_entity_fast_path_is_pandas_uniqueness(keys):
    from feature_platform.feast_format.sqlite_features import _one_row_per_entity

    column = pd.Series(keys, dtype="int64")
    assert _one_row_per_entity(column) == column.is_unique
    assert _one_row_per_entity(column.astype("Int64")) == column.is_unique


def test_a_write_in_several_slices_is_identical_to_feast_and_keeps_each_entitys_last_row(runtimes, monkeypatch):
    """A write encodes and binds its rows a slice at a time (`WRITE_SLICE_ROWS`, in key order): the table is the one
    stock Feast writes, and an entity whose rows fall in two slices keeps its last one."""
    from feature_platform.feast_format import sqlite_features

    monkeypatch.setattr(sqlite_features, "WRITE_SLICE_ROWS", 7)
    feast_rt, platform_rt = runtimes
    rows = frame(list(range(-40, 60)), "2026-03-03", seed=5)
    feast_rt.feast.write_to_online_store("user_activity", rows)
    written = SqliteFeatures(platform_rt.settings.feast_dir / "online.db", "feature_platform").write(SPEC, rows)
    assert written == len(rows)
    assert table_rows(platform_rt.settings.feast_dir / "online.db") == table_rows(feast_rt.settings.feast_dir / "online.db")

    twice = pd.concat([frame(list(range(20)), "2026-03-04", seed=6), frame(list(range(19, -1, -1)), "2026-03-04", seed=7)],
                      ignore_index=True)
    path = platform_rt.settings.feast_dir / "online.db"
    assert SqliteFeatures(path, "feature_platform").write(SPEC, twice) == len(twice)  # ties rewrite
    last = twice.drop_duplicates("user_id", keep="last").set_index("user_id")
    with sqlite3.connect(path) as conn:
        stored = dict(conn.execute("SELECT entity_key, value_text FROM feature_platform_user_activity "
                                   "WHERE feature_name = 'total_tokens_7d'").fetchall())
    keys = fmt.entity_keys("user_id", "int64", pd.Series(range(20), dtype="int64"), project="")
    assert [stored[k] for k in keys] == [str(last.loc[u, "total_tokens_7d"]) for u in range(20)]


def test_a_write_that_fails_in_a_later_slice_writes_nothing(tmp_path, monkeypatch):
    """Every slice of a write is in one transaction: one that fails part-way leaves the table as it was."""
    from feature_platform.feast_format import sqlite_features

    platform = FeaturePlatform(make_embedded_settings(tmp_path))
    platform.apply()
    path = platform.settings.feast_dir / "online.db"
    first = frame([1, 2, 3], "2026-03-02", seed=1)
    SqliteFeatures(path, "feature_platform").write(SPEC, first)
    before = table_rows(path)
    monkeypatch.setattr(sqlite_features, "WRITE_SLICE_ROWS", 4)
    cells, calls = sqlite_features._cells, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return cells(*args)

    monkeypatch.setattr(sqlite_features, "_cells", failing)
    with pytest.raises(OSError, match="disk full"):
        SqliteFeatures(path, "feature_platform").write(SPEC, frame(list(range(1, 12)), "2026-03-05", seed=2))
    assert len(calls) == 3 and table_rows(path) == before


@settings(max_examples=80, deadline=None)
@given(seconds=st.lists(st.one_of(st.none(), st.integers(-(2**33), 2**33)), max_size=30),
       unit=st.sampled_from(["s", "ms", "us", "ns"]),
       tz=st.sampled_from([None, "UTC", pytz.UTC, ZoneInfo("UTC"), "Europe/Paris", "America/New_York", "Asia/Kolkata"]))
def test_times_made_utc_without_parsing_are_pandas_to_datetime(seconds, unit, tz):
    """`codec.utc_times` converts a datetime64 column as it is (naive: UTC; already UTC, whichever library's UTC:
    as pandas' own) instead of `pd.to_datetime`: the same values, unit and dtype; anything else (text, objects) still
    goes through `pd.to_datetime`."""
    naive = pd.Series(pd.to_datetime([None if s is None else s * 1_000_000_007 for s in seconds], unit="ns"))
    column = naive.astype(f"datetime64[{unit}]")
    if tz is not None:
        column = column.dt.tz_localize("UTC").dt.tz_convert(tz)
    want = pd.to_datetime(column, utc=True, format="ISO8601")
    got = fmt.utc_times(column)
    assert got.dtype == want.dtype
    pd.testing.assert_series_equal(got, want)
    text = column.astype(str).where(column.notna(), None)
    pd.testing.assert_series_equal(fmt.utc_times(text), pd.to_datetime(text, utc=True, format="ISO8601"))
