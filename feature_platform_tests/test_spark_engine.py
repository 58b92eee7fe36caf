"""The Spark engine computes exactly what the pandas engine computes, through the same pipeline.

PySpark runs in local mode (`local[2]`, one SparkSession for the whole module). The same partitions are
materialized through Dagster with `FEATURE_PLATFORM_ENGINE=pandas` and `=spark`, each in its own home or
database, and the offline tables (values, dtypes, closing rows, row counts) and online vectors must be
equal, on the embedded and on the services profile. Without PySpark or Java these tests fail under CI=true.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from chat_activity.user_activity import SPEC

import feature_platform as fp
from feature_platform.compute.engine import PandasEngine
from feature_platform.config import Settings
from feature_platform.defs.resources import FeaturePlatformResource
from feature_platform.demo.generator import generate_day
from feature_platform.errors import AggregationOverflowError, SourceDataError, ValidationFailedError
from feature_platform.pipeline import materialize_range
from feature_platform.runtime import Runtime
from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP, day_end
from feature_platform_tests import raw_variants
from feature_platform_tests.helpers import (
    IN_CI,
    make_embedded_settings,
    services_settings_in,
    sessions_frame,
    write_sessions,
)

pytestmark = pytest.mark.spark

FIRST, LAST = date(2026, 1, 3), date(2026, 1, 12)  # 10 partitions
FEATURES = [f"user_activity:{name}" for name in SPEC.feature_names]


@pytest.fixture(scope="module")
def spark():
    """The module's SparkSession; PySpark or Java missing fails under CI=true (they are dev dependencies)."""
    problem = None
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        problem = f"PySpark is not installed ({exc}): pip install -c requirements.lock -e '.[dev]'"
    if problem is None and not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        problem = "Java 17 is not on PATH (and JAVA_HOME is unset): the Spark engine needs it"
    if problem:
        if IN_CI:
            pytest.fail(problem + " (CI=true: Spark tests never skip)")
        pytest.skip(problem)
    from feature_platform.compute.spark_engine import spark_session

    # A short-lived JVM: the C1 JIT alone halves Spark's warm-up here (a long backfill wants the default).
    session = spark_session("local[2]", {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"})
    yield session
    session.stop()  # the JVM's memory back for the rest of the suite


def edge_sessions() -> pd.DataFrame:
    """Hand-made users (ids above the generated ones) for each rule the engines must agree on."""
    return sessions_frame([
        # Several sessions a day, a repeated session id (counted once, summed twice), a mode tie on
        # 2026-01-04 between 'gpt-4o' (2) and 'claude-opus' (2): the alphabetically first wins.
        (10_001, "a1", "2026-01-04T08:00:00Z", 100.0, 3, 1, "gpt-4o", 300),
        (10_001, "a2", "2026-01-04T09:00:00Z", 200.0, 4, 0, "gpt-4o", 400),
        (10_001, "a3", "2026-01-04T10:00:00Z", 300.0, 5, 2, "claude-opus", 500),
        (10_001, "a3", "2026-01-04T11:00:00Z", 50.0, 1, 0, "claude-opus", 100),
        # Code point order, not case-insensitive: 'Zeta' < 'alpha' < 'ämodel'.
        (10_002, "b1", "2026-01-05T00:00:00Z", 10.0, 1, 0, "alpha", 10),
        (10_002, "b2", "2026-01-05T01:00:00Z", 10.0, 1, 0, "Zeta", 10),
        (10_002, "b3", "2026-01-05T02:00:00Z", 10.0, 1, 0, "ämodel", 10),
        # Window edges: 2026-01-03 00:00 is the first instant of the window of day 2026-01-09, and
        # 2026-01-11 00:00 the first instant after the window of 2026-01-10: active, gone for a day
        # (a closing row on 2026-01-10), then back.
        (10_003, "c1", "2026-01-03T00:00:00Z", 60.0, 2, 1, "llama-3", 20),
        (10_003, "c2", "2026-01-11T00:00:00Z", 90.0, 2, 1, "llama-3", 20),
        # One session at the first instant the first partition reads: its only row is a closing row.
        (10_004, "d1", "2025-12-27T00:00:00Z", 5.0, 1, 0, "claude-haiku", 5),
    ])


@pytest.fixture(scope="module")
def sessions_dir(tmp_path_factory) -> Path:
    """Generated users (multiple sessions a day, users going quiet and coming back) plus the edge users."""
    days = [FIRST - timedelta(days=8) + timedelta(days=i) for i in range((LAST - FIRST).days + 9)]
    frames = [generate_day(d, 120, seed=11) for d in days] + [edge_sessions()]
    return write_sessions(tmp_path_factory.mktemp("spark") / "sessions", pd.concat(frames, ignore_index=True))


def with_engine(settings: Settings, engine: str, sessions: Path) -> Settings:
    return settings.with_(engine=engine, sessions_path=sessions)


def materialized(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Materialize FIRST..LAST through Dagster; the offline table (sorted, no created time) and every
    user's online vector as of the last partition's end."""
    platform = fp.FeaturePlatform(settings)
    platform.materialize("user_activity", FIRST, LAST)
    # The runs' stores and engine come from the Dagster resource: it must carry the engine setting.
    assert FeaturePlatformResource.from_settings(settings).runtime().engine.name == settings.engine
    table = platform.offline_table("user_activity", FIRST, LAST).drop(columns=[CREATED_TIMESTAMP])
    table = table.sort_values([EVENT_TIMESTAMP, "user_id"]).reset_index(drop=True)
    users = sorted(int(u) for u in table["user_id"].unique())
    online = platform.online_features(FEATURES, [{"user_id": u} for u in users],
                                      now=(day_end(LAST) + timedelta(hours=1)))
    return table, online


def assert_expected_edges(table: pd.DataFrame) -> None:
    """A few rows fixed by hand, so equal tables cannot both be wrong the same way."""
    def row(user: int, day: str) -> pd.Series:
        rows = table[(table["user_id"] == user) & (table[EVENT_TIMESTAMP] == pd.Timestamp(day, tz="UTC"))]
        assert len(rows) == 1, (user, day, rows)
        return rows.iloc[0]

    a = row(10_001, "2026-01-05")  # partition 2026-01-04
    assert (a["sessions_7d"], a["messages_sent_7d"], a["preferred_model"]) == (3, 13, "claude-opus")
    assert a["avg_session_duration_sec"] == pytest.approx(162.5)
    assert row(10_002, "2026-01-06")["preferred_model"] == "Zeta"
    assert row(10_003, "2026-01-10")["sessions_7d"] == 1  # partition 2026-01-09 still holds 01-03 00:00
    between = row(10_003, "2026-01-11")  # partition 2026-01-10: c1 has left, c2 is not in yet
    assert (between["sessions_7d"], between["tools_used_7d"], between["preferred_model"]) == (0, 0, "unknown")
    assert row(10_003, "2026-01-12")["total_tokens_7d"] == 20  # partition 2026-01-11: back
    gone = row(10_004, "2026-01-04")  # partition 2026-01-03: its only session left the window
    assert (gone["sessions_7d"], gone["messages_sent_7d"], gone["preferred_model"]) == (0, 0, "unknown")
    assert pd.isna(gone["avg_session_duration_sec"])
    assert (table["user_id"] == 10_004).sum() == 1


def assert_identical(expected: tuple[pd.DataFrame, pd.DataFrame], actual: tuple[pd.DataFrame, pd.DataFrame]):
    (table_p, online_p), (table_s, online_s) = expected, actual
    assert len(table_p) > 500 and (table_p["preferred_model"] == "unknown").sum() > 10  # closing rows present
    assert_expected_edges(table_p)
    pd.testing.assert_frame_equal(table_s, table_p, check_exact=True)
    pd.testing.assert_frame_equal(online_s, online_p, check_exact=True)


def test_both_engines_materialize_identical_tables_on_the_embedded_profile(spark, sessions_dir, tmp_path):
    pandas_run = materialized(with_engine(make_embedded_settings(tmp_path / "pandas"), "pandas", sessions_dir))
    spark_settings = with_engine(make_embedded_settings(tmp_path / "spark"), "spark", sessions_dir)
    assert_identical(pandas_run, materialized(spark_settings))
    # The offline table Spark's run wrote is partitioned Parquet, one file per partition day, which
    # Spark itself reads back as one table.
    view_dir = spark_settings.offline_dir / "user_activity"
    days = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    assert sorted(p.name for p in view_dir.glob("*.parquet")) == [f"{d.isoformat()}.parquet" for d in days]
    assert spark.read.parquet(str(view_dir)).count() == len(pandas_run[0])


@pytest.mark.services
def test_both_engines_materialize_identical_tables_on_the_services_profile(spark, sessions_dir, services_settings,
                                                                            tmp_path):
    with services_settings_in(tmp_path / "pandas") as pandas_settings:  # its own databases; Redis flushed after
        pandas_run = materialized(with_engine(pandas_settings, "pandas", sessions_dir))
    assert_identical(pandas_run, materialized(with_engine(services_settings, "spark", sessions_dir)))


def test_engines_compute_identical_chunks_over_twenty_generated_days(spark, tmp_path):
    first = date(2026, 2, 1)
    days = [first - timedelta(days=8) + timedelta(days=i) for i in range(28)]
    sessions = write_sessions(tmp_path / "sessions",
                              pd.concat([generate_day(d, 300, seed=5) for d in days], ignore_index=True))
    last = first + timedelta(days=19)
    chunks = {}
    for engine in ("pandas", "spark"):
        runtime = Runtime(with_engine(make_embedded_settings(tmp_path / engine), engine, sessions))
        assert runtime.engine.name == engine
        chunks[engine] = list(runtime.compute_chunks(SPEC, first, last))
    assert len(chunks["spark"]) == len(chunks["pandas"]) == 2  # 16 + 4 days: the runtime's chunking
    for p, s in zip(chunks["pandas"], chunks["spark"]):
        assert s.days == p.days
        assert s.bounds.tolist() == p.bounds.tolist()
        pd.testing.assert_frame_equal(s.frame, p.frame, check_exact=True)
    frame = pd.concat([c.frame for c in chunks["pandas"]])
    assert len(frame) > 3_000 and (frame["sessions_7d"] == 0).sum() > 100  # many rows, many closing rows


@pytest.mark.parametrize("bad_row, message", [
    ((1, "s1", "2026-01-05T10:00:00Z", 30.0, -2, 0, "llama-3", 10), r"column 'message_count': 1 negative value\(s\).*'s1'"),
    ((1, "s1", "2026-01-05T10:00:00.000000001Z", 30.0, 2, 0, "llama-3", 10), r"column 'event_timestamp'"),  # ns lost
])
def test_bad_source_rows_are_refused_by_both_engines_naming_the_column(spark, tmp_path, bad_row, message):
    sessions = write_sessions(tmp_path / "sessions", sessions_frame(
        [bad_row, (2, "s2", "2026-01-05T11:00:00Z", 30.0, 1, 0, "llama-3", 10)]))
    for engine in ("pandas", "spark"):
        runtime = Runtime(with_engine(make_embedded_settings(tmp_path / engine), engine, sessions))
        with pytest.raises(SourceDataError, match=message):
            list(runtime.compute_chunks(SPEC, date(2026, 1, 5), date(2026, 1, 6)))


def _variant_rows(tag: str) -> pd.DataFrame:
    return sessions_frame([(1, f"{tag}1", "2026-01-05T10:00:00Z", 30.0, 2, 0, "llama-3", 10),
                           (2, f"{tag}2", "2026-01-05T11:00:00Z", 45.0, 1, 1, "gpt-4o", 20),
                           (1, f"{tag}3", "2026-01-06T09:30:00Z", 12.0, 3, 0, "gpt-4o", 30)])


def _chunks(tmp_path, engine: str, sessions: Path) -> list:
    runtime = Runtime(with_engine(make_embedded_settings(tmp_path / engine), engine, sessions))
    return list(runtime.compute_chunks(SPEC, date(2026, 1, 5), date(2026, 1, 8)))


def test_both_engines_read_every_valid_way_of_writing_a_file_alike(spark, tmp_path):
    """Issue 19 item 10: one folder with a file per `raw_variants.VALID` writer (other widths, units, zones,
    naive times next to zone-aware ones, encodings, no statistics, extra columns of types Spark cannot read)."""
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    for n, (name, write) in enumerate(sorted(raw_variants.VALID.items())):
        write(raw_variants.prepared(name, _variant_rows(f"v{n}-")), sessions, f"part-{n}")
    raw_variants.write_skipped(sessions)
    raw_variants.write_untyped_empty(sessions)
    pandas_chunks, spark_chunks = _chunks(tmp_path, "pandas", sessions), _chunks(tmp_path, "spark", sessions)
    assert len(pandas_chunks) == len(spark_chunks) == 1
    assert pandas_chunks[0].frame["sessions_7d"].max() == 2 * len(raw_variants.VALID)  # every file was read
    pd.testing.assert_frame_equal(spark_chunks[0].frame, pandas_chunks[0].frame, check_exact=True)


@pytest.mark.parametrize("kind", sorted(raw_variants.CORRUPT))
def test_both_engines_refuse_every_malformed_file_with_the_same_error(spark, tmp_path, kind):
    """Issue 19 items 6 and 10: the same one-line SourceDataError, naming the file (column, first rows)."""
    column, write = raw_variants.CORRUPT[kind]
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    _variant_rows("a").to_parquet(sessions / "a.parquet")
    bad = write(_variant_rows("b"), sessions, "b", 1)
    _variant_rows("c").to_parquet(sessions / "c.parquet")
    messages = []
    for engine in ("pandas", "spark"):
        with pytest.raises(SourceDataError) as info:
            _chunks(tmp_path, engine, sessions)
        messages.append(str(info.value))
    assert messages[0].startswith(f"sessions source {bad}") and (column is None or repr(column) in messages[0])
    assert messages[1] == messages[0]


def test_integer_sums_beyond_int64_fail_alike_in_both_engines_and_write_nothing(spark, tmp_path):
    """Spark's long sum wraps around (ANSI off) or fails without naming a row (ANSI on, Spark 4's default): both
    engines sum exactly, keep sums up to 2**63 - 1, and raise the same error for the first one beyond it."""
    big = 2**62
    sessions = write_sessions(tmp_path / "sessions", sessions_frame([
        (7, "s1", "2026-01-05T01:00:00Z", 30.0, 1, 0, "llama-3", big),
        (7, "s2", "2026-01-05T02:00:00Z", 30.0, 1, 0, "llama-3", big - 1),  # 2**63 - 1: fits exactly
        (8, "s3", "2026-01-05T03:00:00Z", 30.0, 1, 0, "llama-3", 2**53 + 1),
        (8, "s4", "2026-01-05T04:00:00Z", 30.0, 1, 0, "llama-3", 2),  # above 2**53: no float rounding
        (7, "s5", "2026-01-06T01:00:00Z", 30.0, 1, 0, "llama-3", 1),  # 2**63 on 2026-01-06
        (8, "s6", "2026-01-06T01:00:00Z", 30.0, 1, 0, "llama-3", big),
        (8, "s7", "2026-01-06T02:00:00Z", 30.0, 1, 0, "llama-3", big),  # 2**63 + 2**53 + 3 on 2026-01-06
    ]))
    runtimes = {engine: Runtime(with_engine(make_embedded_settings(tmp_path / engine), engine, sessions))
                for engine in ("pandas", "spark")}
    chunks = {engine: list(r.compute_chunks(SPEC, date(2026, 1, 5), date(2026, 1, 5))) for engine, r in runtimes.items()}
    pd.testing.assert_frame_equal(chunks["spark"][0].frame, chunks["pandas"][0].frame, check_exact=True)
    assert chunks["spark"][0].frame["total_tokens_7d"].tolist() == [2**63 - 1, 2**53 + 3]

    errors = {}
    for engine, runtime in runtimes.items():
        with pytest.raises(AggregationOverflowError) as err:
            materialize_range(runtime, SPEC, date(2026, 1, 5), date(2026, 1, 6))  # the days the log holds
        errors[engine] = err.value
        assert runtime.offline.partitions(SPEC) == []  # nothing written (nor online: no partition completed)
    assert str(errors["spark"]) == str(errors["pandas"])
    error = errors["spark"]
    assert (error.view, error.partition, error.feature, error.entity, error.value) == \
        ("user_activity", "2026-01-06", "total_tokens_7d", 7, 2**63)
    assert str(error).startswith("feature view 'user_activity', partition 2026-01-06: feature 'total_tokens_7d' (sum "
                                 f"of 'tokens') of user_id=7 is {2**63}, outside int64 ")
    assert "(2 values of this partition overflow)" in str(error)


def test_spark_rows_go_through_the_same_validation_and_a_bad_day_writes_nothing(spark, tmp_path):
    strict = dataclasses.replace(SPEC, fields=tuple(
        dataclasses.replace(f, le=2) if f.name == "sessions_7d" else f for f in SPEC.fields))
    sessions = write_sessions(tmp_path / "sessions", sessions_frame([
        (7, f"s{i}", f"2026-01-05T0{i}:00:00Z", 30.0, 1, 0, "llama-3", 10) for i in range(3)]))
    runtime = Runtime(with_engine(make_embedded_settings(tmp_path), "spark", sessions))
    with pytest.raises(ValidationFailedError, match=r"column 'sessions_7d' check 'less_than_or_equal_to\(2\)'") as err:
        materialize_range(runtime, strict, date(2026, 1, 5), date(2026, 1, 5))  # the day the log holds
    assert err.value.completed == []
    assert runtime.offline.partitions(strict) == []  # nothing written offline (nor online: no day completed)
    assert Path(err.value.quarantine_path).exists()


def test_the_engine_is_chosen_by_configuration(tmp_path):
    assert Settings.from_env({}).engine == "pandas"
    assert isinstance(Runtime(make_embedded_settings(tmp_path)).engine, PandasEngine)
    settings = Settings.from_env({"FEATURE_PLATFORM_ENGINE": "spark", "FEATURE_PLATFORM_SPARK_MASTER": "local[1]"})
    assert (settings.engine, settings.spark_master) == ("spark", "local[1]")
    assert Settings.from_env(settings.as_env()) == settings
    with pytest.raises(ValueError, match="FEATURE_PLATFORM_ENGINE must be 'pandas' or 'spark', not 'dask'"):
        Settings.from_env({"FEATURE_PLATFORM_ENGINE": "dask"})
