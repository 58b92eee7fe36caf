"""Fuzzed Python API arguments (issue 9 items 6 and 8): garbage view, feature and entity arguments end in
the package's own errors (or a TypeError/ValueError raised by the package itself, with a short message),
never in a library's; and a hostile name cannot reach PostgreSQL or Redis (services profile)."""

from __future__ import annotations

import traceback
from datetime import date

import pandas as pd
import psycopg
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import feature_platform as fp
from feature_platform.demo.generator import generate_day
from feature_platform.specs.user_activity import SPEC as USER_ACTIVITY
from feature_platform_tests.conftest import make_embedded_settings, services_settings_in, write_sessions

HOSTILE = ['x"; DROP TABLE offline.user_activity; --', "user_activity; DROP SCHEMA offline CASCADE", "*", "?", "[a-z]*",
           "user_activity*", "user activity", "Üser_äctivity", "user_activity\x00", "'", "a" * 100_000, "", ":"]
names = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30), st.text(alphabet="*?[]\"';: \\-", max_size=10))
garbage = st.one_of(st.none(), st.integers(), st.floats(), st.booleans(), st.binary(max_size=5),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
refs = st.one_of(names, names.map(lambda n: f"user_activity:{n}"), names.map(lambda n: f"{n}:sessions_7d"), garbage)
features = st.one_of(names, garbage, st.lists(refs, min_size=1, max_size=3))
bad_keys = st.one_of(st.sampled_from(["*", "1", "1 OR 1=1", 1.0, 1.5, True, None, 2**63, -(2**63) - 1, [1], b"1"]),
                     st.floats(), st.text(max_size=5))
days = st.one_of(names, garbage, st.sampled_from(["2026-02-30", "2026-1-1", "01/02/2026", "2026-01-01T00:00:00",
                                                   20260101, pd.NaT]))


def assert_clear(exc: BaseException) -> None:
    """The package's error, or a TypeError/ValueError raised by the package's own code, briefly worded."""
    assert len(str(exc)) < 1500, str(exc)[:300]
    if isinstance(exc, fp.FeaturePlatformError):
        return
    assert type(exc) in (TypeError, ValueError), repr(exc)[:300]
    where = traceback.extract_tb(exc.__traceback__)[-1].filename
    assert "/feature_platform/" in where and "site-packages" not in where, (where, repr(exc)[:300])


def fails_clearly(call) -> None:
    with pytest.raises(Exception) as info:  # noqa: PT011 - which one is what assert_clear checks
        call()
    assert_clear(info.value)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    settings_ = make_embedded_settings(tmp_path_factory.mktemp("fuzz_api"))
    write_sessions(settings_.sessions_path, pd.concat([generate_day(date(2026, 1, d), 30) for d in range(1, 4)]))
    platform = fp.FeaturePlatform(settings_)
    platform.materialize("user_activity", "2026-01-03")
    return platform


@settings(max_examples=100, deadline=None)
@given(features, st.sampled_from(["online", "training"]))
def test_garbage_features_are_clear_errors(platform, feats, where):
    entity_df = pd.DataFrame({"user_id": [1], "event_timestamp": pd.to_datetime(["2026-01-04"], utc=True)})
    if where == "online":
        fails_clearly(lambda: platform.online_features(feats, [{"user_id": 1}]))
    else:
        fails_clearly(lambda: platform.training_set(entity_df, feats))


@settings(max_examples=60, deadline=None)
@given(st.one_of(names, garbage), days.filter(lambda d: d is not None), days.filter(lambda d: d is not None))
def test_garbage_views_and_dates_are_clear_errors(platform, view, start, end):
    fails_clearly(lambda: platform.view(view))
    fails_clearly(lambda: platform.offline_table(view))
    fails_clearly(lambda: platform.materialize(view, "2026-01-03"))
    fails_clearly(lambda: platform.offline_table("user_activity", start=start))
    fails_clearly(lambda: platform.materialize("user_activity", "2026-01-03", end))
    fails_clearly(lambda: platform.push(view, pd.DataFrame()))


@settings(max_examples=60, deadline=None)
@given(bad_keys, st.sampled_from(["pandas", "dict"]))
def test_entity_values_of_the_wrong_type_are_clear_errors(platform, key, output):
    fails_clearly(lambda: platform.online_features(["user_activity:sessions_7d"], [{"user_id": key}], output=output))


@pytest.mark.parametrize("rows", ["user_id=1", {"user_id": 1}, [1], [("user_id", 1)], None, 42,
                                  pd.DataFrame({"user_id": [1]})])
def test_entity_rows_of_the_wrong_shape_are_clear_errors(platform, rows):
    fails_clearly(lambda: platform.online_features(["user_activity:sessions_7d"], rows))


def test_valid_calls_still_work(platform):
    """The checks refuse garbage only: numpy keys, date objects and services keep working."""
    import numpy as np

    table = platform.offline_table("user_activity", start=date(2026, 1, 3), end=pd.Timestamp("2026-01-03"))
    user = int(table["user_id"].iloc[0])
    got = platform.online_features(["user_activity:sessions_7d"], [{"user_id": np.int64(user)}],
                                   now=pd.Timestamp("2026-01-04T01:00:00Z").to_pydatetime())
    assert got["sessions_7d"].tolist() == table.loc[table["user_id"] == user, "sessions_7d"].tolist()


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_api_services")
    with services_settings_in(root) as settings_:
        write_sessions(settings_.sessions_path, pd.concat([generate_day(date(2026, 1, d), 20) for d in range(1, 4)]))
        platform = fp.FeaturePlatform(settings_)
        platform.materialize("user_activity", "2026-01-03")
        yield platform


def snapshot(platform) -> tuple:
    """Every table with its row count, and every Redis key with its hash fields."""
    s = platform.settings
    with psycopg.connect(s.pg_conninfo(s.pg_db)) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
        counts = {t: conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(*t)))
                  .fetchone()[0] for t in tables}
    client = redis.Redis(host=s.redis_host, port=s.redis_port, db=s.redis_db)
    keys = {k: (sorted(client.hkeys(k)) if client.type(k) == b"hash" else client.type(k)) for k in client.scan_iter()}
    return counts, keys


@pytest.mark.services
def test_hostile_names_cannot_touch_postgres_or_redis(services):
    before = snapshot(services)
    assert ("offline", "user_activity") in before[0] and before[0][("offline", "user_activity")] > 0
    assert before[1]
    user = int(services.offline_table("user_activity")["user_id"].iloc[0])
    vector = services.online_features(["user_activity:sessions_7d"], [{"user_id": user}], with_metadata=True)
    calls = [lambda n: services.offline_table(n), lambda n: services.materialize(n, "2026-01-03"),
             lambda n: services.online_features([f"user_activity:{n}"], [{"user_id": user}]),
             lambda n: services.online_features([f"{n}:sessions_7d"], [{"user_id": user}]),
             lambda n: services.online_features(n, [{"user_id": user}]),
             lambda n: services.online_features(["user_activity:sessions_7d"], [{"user_id": n}]),
             lambda n: services.remove(n), lambda n: services.push(n, pd.DataFrame()), lambda n: services.history(n)]
    for name in HOSTILE:
        for call in calls:
            fails_clearly(lambda: call(name))  # noqa: B023 - called at once
    assert services.history("no_such_view").empty  # a parameter, not SQL: nothing matches
    assert snapshot(services) == before
    again = services.online_features(["user_activity:sessions_7d"], [{"user_id": user}], with_metadata=True)
    pd.testing.assert_frame_equal(again, vector)


ACTIVITY = [f"user_activity:{f}" for f in USER_ACTIVITY.feature_names]
REQUEST = ["user_activity_request:tokens_per_message", "user_activity_request:prompt_vs_typical_message"]
CALLER_COLUMNS = sorted({r.split(":")[1] for r in ACTIVITY + REQUEST} | {r.replace(":", "__") for r in ACTIVITY + REQUEST}
                        | {"label", "note"})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(ACTIVITY + REQUEST), min_size=1, max_size=4, unique=True), st.booleans(),
       st.lists(st.sampled_from(CALLER_COLUMNS), max_size=4, unique=True))
def test_caller_columns_are_never_overwritten(platform, refs, full, extra):
    """Any mix of stored and request-time features, short or full names, and caller columns named like
    outputs, like a request view's inputs, or neither (issue 19 item 4): a caller column named like an output
    is refused by name; every other caller column comes back exactly as it was."""
    entity = pd.DataFrame({"user_id": [1, 2, 3], "event_timestamp": pd.to_datetime(["2026-01-04"] * 3, utc=True),
                           "prompt_tokens": [5, 6, 7]}).assign(**{c: f"mine-{c}" for c in extra})
    outputs = {r.replace(":", "__") if full else r.split(":")[1] for r in refs}
    clash = sorted(outputs & set(extra))
    if clash:
        with pytest.raises(fp.FeaturePlatformError, match=r"already has column\(s\) '(" + "|".join(clash) + ")'"):
            platform.training_set(entity, refs, full_feature_names=full)
        return
    got = platform.training_set(entity, refs, full_feature_names=full)
    assert list(got.columns) == [*entity.columns, *(r.replace(":", "__") if full else r.split(":")[1] for r in refs)]
    pd.testing.assert_frame_equal(got[entity.columns], entity)
