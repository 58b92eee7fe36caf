"""Which days a Parquet source holds: the completeness check before a range run reads them from the files' own
statistics (no row read) and finds what reading every time finds; a file is opened once per version of it."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_platform.errors import MissingSourceDaysError
from feature_platform.sources.observe import check_window_days, observe
from feature_platform.sources.parquet import ParquetSource
from feature_platform.sources.parquet import _footer as _real_footer
from feature_platform.spec import Field, SourceSpec

CLICKS = SourceSpec(name="clicks", path="clicks", timestamp_column="at", columns=(Field("user", "int64"),))
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _write(path, minutes: list[int], *, statistics: bool = True, naive: bool = False) -> None:
    times = [T0 + timedelta(minutes=m) for m in minutes]
    kind = pa.timestamp("us") if naive else pa.timestamp("us", tz="UTC")
    values = pa.array([t.replace(tzinfo=None) for t in times] if naive else times, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"user": pa.array(range(len(minutes)), pa.int64()), "at": values}), path,
                   write_statistics=statistics)


files = st.lists(st.tuples(st.lists(st.integers(0, 14 * 24 * 60), min_size=0, max_size=6), st.booleans(),
                           st.booleans(), st.booleans()), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=files, lo=st.integers(0, 14), width=st.integers(1, 14))
def test_the_days_present_without_counts_are_the_days_reading_every_time_finds(tmp_path_factory, files, lo, width):
    root = tmp_path_factory.mktemp("clicks")
    for i, (minutes, statistics, naive, hive) in enumerate(files):
        day = (T0 + timedelta(days=i)).date()
        _write(root / (f"date={day}" if hive else "flat") / f"part-{i}.parquet", minutes, statistics=statistics,
               naive=naive)
    reader = ParquetSource(CLICKS, str(root))
    start = T0 + timedelta(days=lo)
    end = start + timedelta(days=width)
    full, quick = observe(reader, start, end), observe(reader, start, end, counts=False)
    assert quick.present == full.present
    assert quick.earliest == full.earliest
    assert quick.rows_by_day == {} and quick.newest is None  # not asked for


def test_a_missing_day_is_found_from_the_statistics_alone(tmp_path):
    _write(tmp_path / "clicks" / "a.parquet", [60, 24 * 60 + 5])  # 03-01 and 03-02
    _write(tmp_path / "clicks" / "b.parquet", [4 * 24 * 60 + 1])  # 03-05: 03-03 and 03-04 missing
    reader = ParquetSource(CLICKS, str(tmp_path / "clicks"))
    check_window_days(reader, "clicks_2d", None, 1, date(2026, 3, 2), date(2026, 3, 2))  # reads 03-01, 03-02
    with pytest.raises(MissingSourceDaysError, match=r"partition 2026-03-03: .* 2026-03-03, 2026-03-04"):
        check_window_days(reader, "clicks_2d", None, 1, date(2026, 3, 2), date(2026, 3, 5))


def test_a_files_footer_is_read_once_per_version_and_a_rewritten_one_is_read_again(tmp_path, monkeypatch):
    import feature_platform.sources.parquet as parquet

    footers = []
    monkeypatch.setattr(parquet, "_footer", lambda *args: footers.append(args[0].path) or _real_footer(*args))
    path = tmp_path / "clicks" / "a.parquet"
    _write(path, [1, 2, 3])
    day = (T0, T0 + timedelta(days=1))
    assert len(ParquetSource(CLICKS, str(tmp_path / "clicks")).read(*day)) == 3
    assert len(ParquetSource(CLICKS, str(tmp_path / "clicks")).read(*day)) == 3
    assert footers == [str(path)]  # the same version: its footer is not read again
    stat = path.stat()
    _write(path, [1, 2, 3, 4, 5])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime: its size differs
    assert len(ParquetSource(CLICKS, str(tmp_path / "clicks")).read(*day)) == 5
    assert footers == [str(path)] * 2
