"""The per-partition checks' fast paths equal their plain definitions: the skew check skipping entities a later
day of the run wrote again, drift from binned baselines, and the partition statistics."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from chat_activity.user_activity import SPEC as ACTIVITY
from hypothesis import given, settings
from hypothesis import strategies as st

import feature_platform as fp
from feature_platform.compute.drift import Distribution, distribution_psi, psi
from feature_platform.compute.partition_stats import SortedValues, feature_stats
from feature_platform.demo.generator import generate_day
from feature_platform.skew import RunSamples, sample_rows, skew_reports
from feature_platform_tests.helpers import write_sessions
from feature_platform_tests.test_freshness_and_skew import tamper

FIRST, LAST = date(2026, 6, 8), date(2026, 6, 12)
DAYS = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]


@pytest.fixture
def ranged(profile_settings):
    """A range run of five days over 60 users a day: most entities have rows on several days."""
    write_sessions(profile_settings.sessions_path, pd.concat([generate_day(date(2026, 6, d), 60) for d in range(1, 13)]))
    platform = fp.FeaturePlatform(profile_settings)
    platform.materialize("user_activity", FIRST, LAST)
    return platform


def superseded_in(offline: dict[date, pd.DataFrame], samples: dict[date, pd.DataFrame]) -> dict[date, set]:
    """Per day, its sampled entities that a later day of the run has a row for."""
    key = ACTIVITY.entity.join_key
    return {day: {k for k in sample[key].tolist() if any(k in set(offline[later][key]) for later in offline if later > day)}
            for day, sample in samples.items()}


def test_skew_skipping_the_run_superseded_entities_equals_reading_them(ranged, monkeypatch):
    runtime = ranged.runtime
    offline = {day: runtime.offline.read(ACTIVITY, day, day) for day in DAYS}
    samples = {day: sample_rows(rows, sample=20, seed=3) for day, rows in offline.items()}
    key = ACTIVITY.entity.join_key
    newest = offline[LAST][key].iloc[0]  # a value the last day compares, changed by hand: a mismatch either way
    tamper(ranged, int(newest), "total_tokens_7d", 123456789)
    samples[LAST] = pd.concat([samples[LAST], offline[LAST][offline[LAST][key] == newest]]).drop_duplicates(key)
    later = superseded_in(offline, samples)
    assert sum(map(len, later.values())) > 0 and not later[LAST]

    read = []
    plain_read = runtime.online.read
    monkeypatch.setattr(runtime.online, "read", lambda *a, **k: read.append(len(a[2])) or plain_read(*a, **k))
    plain = skew_reports(runtime, ACTIVITY, samples, sample=10_000)
    fast = skew_reports(runtime, ACTIVITY, samples, sample=10_000, superseded=later)
    assert fast == plain
    assert plain[LAST].mismatches == 1 and plain[LAST].examples[0][key] == newest
    assert any(r.superseded == r.sampled > 0 for r in plain.values())  # an early day: nothing left to compare
    entities = len({k for s in samples.values() for k in s[key].tolist()})
    assert read[0] == entities and read[1] == len({k for d, s in samples.items() for k in s[key] if k not in later[d]})
    assert read[1] < read[0]


# --- drift ----------------------------------------------------------------------------------------------------


def plain_psi(expected: pd.Series, actual: pd.Series, bins: int = 10) -> float | None:
    """PSI as first defined: quantile bins of `expected` counted by one comparison per edge, categories factorized
    over both samples at once."""
    from feature_platform.compute.drift import EPSILON

    expected, actual = expected.dropna(), actual.dropna()
    if expected.empty or actual.empty:
        return None
    if pd.api.types.is_numeric_dtype(expected) and pd.api.types.is_numeric_dtype(actual):
        x, y = expected.to_numpy(dtype=float), actual.to_numpy(dtype=float)
        edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        inner = edges[1:-1]

        def counts(values):
            at_least = np.array([np.count_nonzero(values >= edge) for edge in inner], dtype=np.int64)
            return -np.diff(np.concatenate(([len(values)], at_least, [0])))

        e, a = counts(x), counts(y)
    else:
        both = pd.concat([expected, actual], ignore_index=True)
        codes, _ = pd.factorize(both if both.dtype == object else both.astype(str))
        n = int(codes.max()) + 1
        e = np.bincount(codes[: len(expected)], minlength=n)
        a = np.bincount(codes[len(expected):], minlength=n)
    e = np.maximum(e / e.sum(), EPSILON)
    a = np.maximum(a / a.sum(), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


NUMBERS = {
    "int64": st.lists(st.integers(-50, 50) | st.integers(-2**62, 2**62), max_size=60).map(
        lambda v: pd.Series(v, dtype="int64")),
    "float64": st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1.5, 2.0]),
                        max_size=60).map(lambda v: pd.Series(v, dtype="float64")),
    "float32": st.lists(st.floats(width=32, allow_nan=True) | st.sampled_from([0.0, -0.0, 0.5]), max_size=60).map(
        lambda v: pd.Series(v, dtype="float32")),
    "Int64": st.lists(st.none() | st.integers(-5, 5), max_size=60).map(lambda v: pd.Series(v, dtype="Int64")),
    "bool": st.lists(st.booleans(), max_size=60).map(lambda v: pd.Series(v, dtype=bool)),
}
WORDS = st.lists(st.none() | st.sampled_from(["a", "b", "claude", "gpt", "", "é"]) | st.text(max_size=3),
                 max_size=60)
CATEGORIES = {
    "object": WORDS.map(lambda v: pd.Series(v, dtype=object)),
    "string": WORDS.map(lambda v: pd.Series(v, dtype="string")),
}
ANY = st.sampled_from(sorted({**NUMBERS, **CATEGORIES})).flatmap(lambda k: {**NUMBERS, **CATEGORIES}[k])


def same_float(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and np.isnan(a) and np.isnan(b))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(NUMBERS)), data=st.data(), bins=st.integers(1, 12))
def test_psi_of_prepared_numbers_equals_the_plain_definition(kind, data, bins):
    expected, actual = data.draw(NUMBERS[kind]), data.draw(NUMBERS[kind] | ANY)
    assert same_float(psi(expected, actual, bins), plain_psi(expected, actual, bins))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(CATEGORIES)), data=st.data())
def test_psi_of_prepared_categories_equals_the_plain_definition(kind, data):
    expected, actual = data.draw(CATEGORIES[kind]), data.draw(CATEGORIES[kind] | ANY)
    assert same_float(psi(expected, actual), plain_psi(expected, actual))
    assert same_float(psi(actual, expected), plain_psi(actual, expected))


def test_a_distribution_prepared_once_serves_both_sides():
    """A week of partitions, each compared with its baseline and then used as one: the same indexes as fresh."""
    rng = np.random.default_rng(5)
    frames = [pd.DataFrame({"n": rng.integers(0, 30, 500), "x": rng.normal(size=500).astype("float32"),
                            "m": rng.choice(["a", "b", "c", None], 500).astype(object)}) for _ in range(4)]
    prepared = [{c: Distribution(f[c]) for c in f} for f in frames]
    for before, after, p_before, p_after in zip(frames, frames[1:], prepared, prepared[1:]):
        for c in before:
            assert distribution_psi(p_before[c], p_after[c]) == plain_psi(before[c], after[c])
            p_after[c].keep_as_baseline()  # as a range run keeps it for the week after
            assert "sorted" not in vars(p_after[c])
    # A baseline kept holds its counts, not its values: categories compare right in any bins, numbers in the bins
    # it was kept for; in others they cannot, and say so.
    assert distribution_psi(prepared[-1]["m"], prepared[0]["m"], bins=4) == plain_psi(frames[-1]["m"], frames[0]["m"], 4)
    for c in ("n", "x"):
        assert vars(prepared[-1][c])["_values"] is None
        with pytest.raises(ValueError, match="kept as a baseline"):
            distribution_psi(prepared[-1][c], prepared[0][c], bins=4)
    empty = Distribution(pd.Series([np.nan, np.nan]))
    empty.keep_as_baseline()
    assert empty.empty and distribution_psi(empty, prepared[0]["x"]) is None


# --- partition statistics --------------------------------------------------------------------------------------


def plain_feature_stats(spec, rows: pd.DataFrame) -> dict:
    """The statistics as first defined: pandas' reductions, column by column."""
    stats: dict = {"null_counts": {f.name: int(rows[f.name].isna().sum()) for f in spec.fields}}
    for f in spec.fields:
        column = rows[f.name]
        stats[f.name] = {"null_rate": float(column.isna().mean()) if len(rows) else 0.0,
                         "distinct": float(column.nunique(dropna=True))}
        if f.dtype in ("int64", "float32", "float64"):
            col = pd.to_numeric(column, errors="coerce")
            stats[f.name] |= {k: (None if pd.isna(v) else float(v)) for k, v in
                              (("min", col.min()), ("max", col.max()), ("mean", col.mean()))}
    return stats


def same_stats(a, b) -> bool:
    """Equal, NaN equal to NaN; floats compared bit for bit but for the sign of zero."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same_stats(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a):
        return np.isnan(b)
    return type(a) is type(b) and a == b


STAT_COLUMNS = {
    "int64": NUMBERS["int64"], "float64": NUMBERS["float64"], "float32": NUMBERS["float32"],
    "string": CATEGORIES["object"],
    "string_mixed": st.lists(st.none() | st.just(float("nan")) | st.sampled_from(["a", "b"]) | st.integers(0, 2)
                             | st.just(pd.NA), max_size=40).map(lambda v: pd.Series(v, dtype=object)),
    "int64_nullable": NUMBERS["Int64"], "bool": NUMBERS["bool"],
}


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(sorted(STAT_COLUMNS)), data=st.data())
def test_column_statistics_equal_pandas_reductions(kind, data):
    from feature_platform.spec import Field

    column = data.draw(STAT_COLUMNS[kind])
    dtype = {"string_mixed": "string", "int64_nullable": "int64", "bool": "bool"}.get(kind, kind)
    spec = type("Spec", (), {"fields": [Field("x", dtype, nullable=True)]})()
    rows = pd.DataFrame({"x": column})
    assert same_stats(feature_stats(spec, rows), plain_feature_stats(spec, rows))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(NUMBERS)), data=st.data(), bins=st.integers(1, 12))
def test_statistics_and_drift_sharing_one_sort_equal_the_plain_definitions(kind, data, bins):
    """A range run sorts each numeric column of a partition once (`SortedValues`), for its statistics and its drift
    distribution: both equal their plain definitions."""
    from feature_platform.spec import Field

    spec = type("Spec", (), {"fields": [Field("x", {"Int64": "int64"}.get(kind, kind), nullable=True)]})()
    frames = [pd.DataFrame({"x": data.draw(NUMBERS[kind])}) for _ in range(2)]
    shared = [SortedValues(f) for f in frames]
    for frame, sorted_values in zip(frames, shared):
        assert same_stats(feature_stats(spec, frame, sorted_values), plain_feature_stats(spec, frame))
    expected, actual = (Distribution(f["x"], s.of("x")) for f, s in zip(frames, shared))
    assert ("sorted" in vars(expected)) == (kind in ("int64", "float64", "float32"))  # handed over, not re-sorted
    assert same_float(distribution_psi(expected, actual, bins), plain_psi(frames[0]["x"], frames[1]["x"], bins))


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.integers(-2**63, 2**63 - 1), max_size=50) | st.lists(st.integers(-3, 70_000), max_size=50)
       | st.lists(st.integers(2**63 - 70_000, 2**63 - 1), max_size=50)
       | st.lists(st.integers(-2**63, -2**63 + 70_000), max_size=50),
       dtype=st.sampled_from(["int64", "int32", "uint64"]))
def test_shared_sort_of_integers_equals_numpys(values, dtype):
    info = np.iinfo(dtype)
    column = np.array([v for v in values if info.min <= v <= info.max], dtype=dtype)
    got = SortedValues(pd.DataFrame({"x": column})).of("x")
    assert got.dtype == column.dtype and got.tolist() == np.sort(column).tolist()


def test_statistics_of_a_range_runs_partitions_equal_pandas_reductions(ranged):
    for day in DAYS:
        rows = ranged.runtime.offline.read(ACTIVITY, day, day)
        assert same_stats(feature_stats(ACTIVITY, rows), plain_feature_stats(ACTIVITY, rows))
        half = rows.iloc[: len(rows) // 2].copy()
        half.loc[half.index[::3], "avg_session_duration_sec"] = np.nan
        assert same_stats(feature_stats(ACTIVITY, half), plain_feature_stats(ACTIVITY, half))


@settings(max_examples=200, deadline=None)
@given(days=st.lists(st.sets(st.integers(0, 30), max_size=25), min_size=1, max_size=6),
       order=st.sampled_from(["ascending", "shuffled", "text"]), seed=st.integers(0, 3))
def test_run_samples_know_which_sampled_entities_a_later_day_has(days, order, seed):
    """`RunSamples.superseded`, kept as days are added (keys searched when sorted), equals the definition."""
    rng = np.random.default_rng(seed)
    frames = []
    for keys in days:
        keys = sorted(keys)
        if order == "shuffled":
            keys = list(rng.permutation(keys)) if keys else keys
        column = [f"u{k}" for k in keys] if order == "text" else np.array(keys, dtype="int64")
        frames.append(pd.DataFrame({"user_id": column, "v": range(len(keys))}))
    run = RunSamples("user_id")
    dates = [FIRST + timedelta(days=i) for i in range(len(frames))]
    for day, rows in zip(dates, frames):
        run.add(day, rows, sample=7, seed=seed)
    want = {day: {k for k in run.samples[day]["user_id"].tolist()
                  if any(k in set(later["user_id"].tolist()) for later in frames[i + 1:])}
            for i, day in enumerate(dates)}
    assert {d: s for d, s in run.superseded.items() if s} == {d: s for d, s in want.items() if s}


@settings(max_examples=100, deadline=None)
@given(column=NUMBERS["int64"] | NUMBERS["float64"] | NUMBERS["Int64"] | CATEGORIES["object"])
def test_closing_rows_count_the_empty_value_as_pandas_compares(column):
    from feature_platform.pipeline import _closing_rows

    first = ACTIVITY.aggregation.aggs[0]
    rows = pd.DataFrame({first.feature: column})
    assert _closing_rows(ACTIVITY, rows) == int((rows[first.feature] == first.empty_value).sum())


# --- validation -----------------------------------------------------------------------------------------------


def plain_failures(rows: pd.DataFrame) -> pd.DataFrame | None:
    import pandera.pandas as pa

    from feature_platform.derive.pandera_schema import pandera_schema

    try:
        pandera_schema(ACTIVITY).validate(rows, lazy=True)
        return None
    except pa.errors.SchemaErrors as exc:
        return exc.failure_cases


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 6)), max_size=14), order=st.sampled_from(
    ["ascending", "as drawn", "keys first"]), bad=st.booleans(), unit=st.sampled_from(["us", "ns"]),
    missing=st.booleans())
def test_validation_leaving_out_a_proved_uniqueness_check_reports_as_before(keys, order, bad, unit, missing):
    from feature_platform.pipeline import validate

    if order == "ascending":
        keys = sorted(keys)
    elif order == "keys first":
        keys = sorted(keys, key=lambda k: (k[1], k[0]))
    stamps = pd.to_datetime([f"2026-06-0{d + 1}" for d, _ in keys], utc=True).as_unit(unit)
    rows = pd.DataFrame({"user_id": np.array([k for _, k in keys], dtype="int64"),
                         **{f.name: pd.Series([1] * len(keys), dtype=f.dtype if f.dtype != "string" else object)
                            for f in ACTIVITY.fields},
                         "event_timestamp": stamps})
    rows["preferred_model"] = "unknown"
    if bad and len(rows):
        rows.loc[0, "sessions_7d"] = -1
    if missing and len(rows):
        rows.loc[len(rows) - 1, "event_timestamp"] = pd.NaT
    got, want = validate(ACTIVITY, rows), plain_failures(rows)
    assert (got is None) == (want is None)
    if want is not None:
        pd.testing.assert_frame_equal(got, want)


def _activity_rows(stamps) -> pd.DataFrame:
    rows = pd.DataFrame({"user_id": np.arange(len(stamps), dtype="int64"),
                         **{f.name: pd.Series([1] * len(stamps), dtype=f.dtype if f.dtype != "string" else object)
                            for f in ACTIVITY.fields},
                         "event_timestamp": stamps})
    rows["preferred_model"] = "unknown"
    return rows


def _beyond_ns() -> pd.Series:
    return pd.Series(np.array(["2300-01-01", "2300-01-02"], dtype="datetime64[us]")).dt.tz_localize("UTC")


def test_validation_in_place_only_where_coercing_the_timestamps_would_change_nothing_but_their_unit():
    from feature_platform.derive.pandera_schema import uncoerced_unit

    day_ends = pd.Series(pd.to_datetime(["2026-06-01 23:59:59.999999"] * 3, utc=True).as_unit("us"))
    assert uncoerced_unit(_activity_rows(day_ends)) == "us"  # a computed chunk's: validated in place
    assert uncoerced_unit(_activity_rows(day_ends.dt.as_unit("ns"))) is None  # already the schema's: coerced as ever
    assert uncoerced_unit(_activity_rows(day_ends.dt.tz_convert("Europe/Paris"))) is None  # coercion converts it
    assert uncoerced_unit(_activity_rows(day_ends.dt.tz_localize(None))) is None  # naive: coercion localizes it
    with_missing = day_ends.copy()
    with_missing[1] = pd.NaT
    assert uncoerced_unit(_activity_rows(with_missing)) is None
    beyond_ns = _beyond_ns()
    assert uncoerced_unit(_activity_rows(beyond_ns)) is None


def test_rows_validated_in_place_are_left_as_they_were_and_report_as_the_coerced_schema_does():
    from feature_platform.pipeline import validate

    stamps = pd.Series(pd.to_datetime(["2026-06-01 23:59:59.999999"] * 4, utc=True).as_unit("us"))
    rows = _activity_rows(stamps)
    rows.loc[2, "sessions_7d"] = -1
    before = rows.copy()
    got = validate(ACTIVITY, rows)
    pd.testing.assert_frame_equal(got, plain_failures(rows))
    pd.testing.assert_frame_equal(rows, before)  # nothing coerced: the frame in place is unchanged
    assert "pandera" not in vars(rows)  # no accessor cycle left on it


def test_timestamps_beyond_the_ns_range_fail_validation_as_before():
    from feature_platform.pipeline import validate

    rows = _activity_rows(_beyond_ns())
    got, want = validate(ACTIVITY, rows), plain_failures(rows)
    assert want is not None  # the coercion to ns fails there
    pd.testing.assert_frame_equal(got, want)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=False), st.integers(-10**6, 10**6).map(float)), min_size=1, max_size=300),
       st.integers(1, 20))
def test_sorted_quantiles_are_numpys(values, bins):
    """Drift's quantile edges read off sorted values are `np.quantile`'s to the bit (infinities included)."""
    from feature_platform.compute.drift import sorted_quantiles

    ordered = np.sort(np.array(values, dtype=float))
    q = np.linspace(0, 1, bins + 1)
    np.testing.assert_array_equal(sorted_quantiles(ordered, q), np.quantile(ordered, q))
