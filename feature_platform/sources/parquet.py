"""Parquet sources: a declared source's rows in a time range, from a file, a directory, a glob or a URI.

Reads only the requested time range (pyarrow pushes the filter down to row groups and files), so
memory is bounded by the window being computed, never by the size of the source.

Each file is read and checked on its own, in its own physical schema, and only then combined: a file whose
types differ from the others' (naive times next to zone-aware ones, a float count next to an integer one)
is read as what it is, and every error names the source, the file and the column.
"""

from __future__ import annotations

import glob
import logging
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from feature_platform.errors import SourceDataError
from feature_platform.sources.rows import SourceRows, _reason

log = logging.getLogger(__name__)



class ParquetSource(SourceRows):
    """One declared Parquet source at one location (a file, a directory, a glob or a filesystem URI)."""

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows with `start <= time < end`, in the declared schema (times UTC, strings as Arrow-backed
        `string[pyarrow]`).

        Naive timestamps are read as UTC, file by file, so naive and zone-aware files may share a directory.
        Integers of any width and floats holding whole numbers are read as int64. A missing or repeated
        column, a wrong type (text for numbers or numbers for text, a non-timestamp time), a file that is not
        Parquet, and rows with a null (a null time included, whether or not the file has statistics) in a
        column not declared nullable, a value outside the column's declared `ge`/`le`/`isin`, a NaN/infinite
        float, a fractional or out-of-range integer or a sub-microsecond time raise `SourceDataError`
        naming the source, the file, the column and sample rows.
        """
        groups: dict[tuple, list[ds.ParquetFileFragment]] = {}
        for fragment in self.files():  # files of the same declared types are scanned together (fast)
            physical = fragment.physical_schema
            groups.setdefault(tuple(physical.field(name).type for name in self.schema.names), []).append(fragment)
        frames = [self._read_files(self._holding(fragments, start, end), start, end) for fragments in groups.values()]
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True) if frames else self._normalized(self.schema.empty_table(), "")

    def _holding(self, fragments: list[ds.ParquetFileFragment], start: datetime,
                 end: datetime) -> list[ds.ParquetFileFragment]:
        """The files that may hold a row of `[start, end)` or a row without a time: all but those whose row-group
        statistics prove they hold neither (a range run's chunk scans its ~24 daily files, not the source's
        hundreds: the scan takes half the time). One is kept of a group with none, so it reads as before."""
        return [f for f in fragments if not _outside(f, self.timestamp, start, end)] or fragments[:1]

    def files(self) -> list[ds.ParquetFileFragment]:
        """The Parquet files of the source, by path, each checked (readable, every declared column present
        once, of a compatible type, no null time in its statistics). Files and directories whose names start
        with '.' or '_' are skipped (`_SUCCESS`, `.crc`: the Hadoop/Spark convention); any other file must be
        Parquet. Hive-style `date=YYYY-MM-DD/` directories are read like any other directory."""
        filesystem, paths = self._resolve()
        try:
            # The declared schema lists the files without opening them: each one is opened (and named) below.
            dataset = ds.dataset(paths, format="parquet", schema=self.schema, filesystem=filesystem)
            fragments = sorted(dataset.get_fragments(), key=lambda fragment: fragment.path)
        except (pa.ArrowException, OSError) as exc:
            raise SourceDataError(f"{self.label} {self.location} cannot be listed: {_reason(exc)}") from exc
        if not fragments:
            raise SourceDataError(f"{self.label} {self.location} holds no Parquet file (names starting with '.' "
                                  "or '_' are skipped)")
        return [self._check_file(fragment) for fragment in fragments]

    def _resolve(self) -> tuple[pafs.FileSystem | None, str | list[str]]:
        """(filesystem, path or files): a local path or glob, or any URI pyarrow has a filesystem for."""
        location = self.location
        if "://" in location and not location.startswith("file://"):
            try:
                filesystem, path = pafs.FileSystem.from_uri(location)
            except (pa.ArrowException, OSError) as exc:
                raise SourceDataError(f"{self.label} {location} cannot be opened: {_reason(exc)}") from exc
            if _is_glob(path):
                selector = pafs.FileSelector(path.split("*")[0].rsplit("/", 1)[0], recursive=True)
                infos = filesystem.get_file_info(selector)
                return filesystem, sorted(i.path for i in infos if i.type == pafs.FileType.File
                                          and Path(i.path).match(path))
            if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
                raise SourceDataError(f"{self.label} {location} does not exist")
            return filesystem, path
        local = location.removeprefix("file://")
        if _is_glob(local):
            files = sorted(f for f in glob.glob(local, recursive=True) if Path(f).is_file())
            if not files:
                raise SourceDataError(f"{self.label} {location} matches no file")
            return None, files
        if not Path(local).exists():
            raise SourceDataError(self._missing(local))
        return None, local

    def _missing(self, path: str) -> str:
        hint = ("set FEATURE_PLATFORM_SESSIONS_PATH to your Parquet file or directory, or run `feature-platform demo` "
                "to generate demo data") if self.spec.name == "sessions" else (
                f"check source {self.spec.name!r}'s path in your feature repository")
        return f"{self.label} {path} does not exist: {hint}"

    def _read_files(self, fragments: list[ds.ParquetFileFragment], start: datetime, end: datetime) -> pd.DataFrame:
        """The rows in `[start, end)` of files of one physical schema, and their rows without a time, cast to
        the declared schema and checked. On a problem, each file is read on its own to name the first bad one."""
        where = fragments[0].path if len(fragments) == 1 else str(Path(fragments[0].path).parent)
        try:
            return self._normalized(self._scan(fragments, start, end), where)
        except (SourceDataError, pa.ArrowException, OSError) as exc:
            if len(fragments) > 1:
                for fragment in fragments:
                    self._read_files([fragment], start, end)
            if isinstance(exc, SourceDataError):
                raise
            raise SourceDataError(f"{self.label} {where} cannot be read: {_reason(exc)}") from exc

    def _scan(self, fragments: list[ds.ParquetFileFragment], start: datetime, end: datetime) -> pa.Table:
        first = fragments[0]
        physical = first.physical_schema
        schema = pa.schema([physical.field(name) for name in self.schema.names])  # every file's types (one group)
        ts_type = physical.field(self.timestamp).type
        column = ds.field(self.timestamp)
        # Rows without a time are read wherever they are (a range filter alone drops them, and a file written
        # without statistics does not count them): `_check_values` refuses them.
        wanted = column.is_null()
        if not pa.types.is_null(ts_type):
            wanted = ((column >= _bound(start, ts_type)) & (column < _bound(end, ts_type))) | wanted
        try:
            dataset = ds.FileSystemDataset(fragments, schema, first.format, first.filesystem)
            return dataset.to_table(filter=wanted, memory_pool=pa.system_memory_pool())
        except (pa.ArrowException, OSError) as exc:
            where = first.path if len(fragments) == 1 else Path(first.path).parent
            raise SourceDataError(f"{self.label} {where} cannot be read: {_reason(exc)}") from exc

    def time_range(self, fragment: ds.ParquetFileFragment) -> tuple[datetime, datetime] | None:
        """The file's first and last time (None when it has no row with one): from its row-group statistics
        where they hold them, else by reading its time column."""
        import pyarrow.compute as pc

        span = _statistics_range(fragment, self.timestamp)
        if span is None:
            times = self.read_times([fragment])
            span = (pc.min(times).as_py(), pc.max(times).as_py()) if len(times) else None
        return span

    def read_times(self, fragments: list[ds.ParquetFileFragment], start: datetime | None = None,
                   end: datetime | None = None) -> pa.ChunkedArray:
        """The times in `[start, end)` (default: all) of the files (of one physical schema), as UTC
        microseconds, nulls left out: the time column alone is read (what `sources.observe` needs to say
        which days the source covers)."""
        import pyarrow.compute as pc

        first = fragments[0]
        field = first.physical_schema.field(self.timestamp)
        if not pa.types.is_timestamp(field.type):
            return pa.chunked_array([], pa.timestamp("us", tz="UTC"))
        column = ds.field(self.timestamp)
        try:
            dataset = ds.FileSystemDataset(fragments, pa.schema([field]), first.format, first.filesystem)
            wanted = column.is_valid()
            if start is not None:
                wanted = wanted & (column >= _bound(start, field.type)) & (column < _bound(end, field.type))
            values = dataset.to_table(columns=[self.timestamp], filter=wanted)[self.timestamp]
        except (pa.ArrowException, OSError) as exc:
            raise SourceDataError(f"{self.label} {first.path} cannot be read: {_reason(exc)}") from exc
        if values.type.tz is None:
            values = pc.assume_timezone(values, "UTC")
        return values.cast(pa.timestamp("us", tz="UTC"), safe=False)

    def _check_file(self, fragment: ds.ParquetFileFragment) -> ds.ParquetFileFragment:
        """The file, checked once per version of it (path, mtime, size). A version opened before is returned as
        it was then, its footer already read: a range run lists the source for every chunk it reads, and reading
        each file's footer again took ~0.2 ms a file (0.5 s of a 92-day run over a year of daily files)."""
        try:
            info = fragment.filesystem.get_file_info(fragment.path)
            version = (fragment.filesystem.type_name, fragment.path, info.mtime_ns, info.size)
            fragment = _OPENED.get(version, fragment)
            schema = fragment.physical_schema  # read once: the fragment keeps it for the scan
        except (pa.ArrowException, OSError) as exc:
            raise SourceDataError(f"{self.label} {fragment.path} cannot be read as Parquet: {_reason(exc)}") from exc
        if len(_OPENED) > 100_000:
            _OPENED.clear()
        _OPENED[version] = fragment
        key = (*version, self.schema)
        if key in _CHECKED:
            return fragment
        self._check_columns(schema, fragment.path)
        self._check_null_times(fragment)
        if getattr(schema.field(self.timestamp).type, "tz", "") is None:  # once per file version, not per read
            log.warning("%s %s: %r is timezone-naive; reading it as UTC", self.label, fragment.path, self.timestamp)
        if len(_CHECKED) > 100_000:
            _CHECKED.clear()
        _CHECKED.add(key)
        return fragment

    def _check_null_times(self, fragment) -> None:
        """A row without a time falls outside every window: refuse the file from its row-group statistics
        when they count nulls (no data read). Without statistics, the rows are found when read (`_scan`)."""
        metadata = fragment.metadata
        # The Parquet (leaf) column, by name: a nested column before it shifts the indices of the Arrow fields.
        leaves = [i for i in range(metadata.num_columns) if metadata.schema.column(i).path == self.timestamp]
        nulls = 0
        for i in range(metadata.num_row_groups):
            stats = metadata.row_group(i).column(leaves[0]).statistics if leaves else None
            nulls += stats.null_count if stats is not None and stats.has_null_count else 0
        if nulls:
            raise SourceDataError(f"{self.label} {fragment.path}: column {self.timestamp!r}: {nulls} null value(s); "
                                  "every row needs its time")

    def _check_columns(self, schema: pa.Schema, path: str) -> None:
        missing = [name for name in self.schema.names if name not in schema.names]
        if missing:
            raise SourceDataError(f"{self.label} {path}: missing column(s) {missing}; expected {self.schema.names}")
        for want in self.schema:
            if (n := len(schema.get_all_field_indices(want.name))) > 1:
                raise SourceDataError(f"{self.label} {path}: column {want.name!r} appears {n} times; a column "
                                      "needs one name")
            got = schema.field(want.name).type
            if not _compatible(want.type, got):
                expected = "a timestamp" if pa.types.is_timestamp(want.type) else str(want.type)
                raise SourceDataError(f"{self.label} {path}: column {want.name!r} has type {got}, expected {expected}")

_CHECKED: set[tuple] = set()  # (filesystem, file, mtime_ns, size, schema) whose schema passed: a range run re-reads them
_OPENED: dict[tuple, ds.ParquetFileFragment] = {}  # (filesystem, file, mtime_ns, size) -> the file, its footer read
SAMPLE_ROWS = 3


def _statistics_range(fragment, column: str) -> tuple[datetime, datetime] | None:
    """The file's smallest and largest time by its row-group statistics, as UTC (None when a group lacks them)."""
    metadata = fragment.metadata
    leaves = [i for i in range(metadata.num_columns) if metadata.schema.column(i).path == column]
    if not leaves or metadata.num_row_groups == 0:
        return None
    lows, highs = [], []
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        if group.num_rows == 0:
            continue
        stats = group.column(leaves[0]).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min, datetime):
            return None
        lows.append(stats.min if stats.min.tzinfo else stats.min.replace(tzinfo=timezone.utc))
        highs.append(stats.max if stats.max.tzinfo else stats.max.replace(tzinfo=timezone.utc))
    return (min(lows), max(highs)) if lows else None


def _outside(fragment, column: str, start: datetime, end: datetime) -> bool:
    """Whether the file's row-group statistics prove it has no time in `[start, end)` and no null time (every
    row group counts its nulls, none, and has a min and max)."""
    metadata = fragment.metadata
    leaves = [i for i in range(metadata.num_columns) if metadata.schema.column(i).path == column]
    if not leaves:
        return False
    for i in range(metadata.num_row_groups):
        stats = metadata.row_group(i).column(leaves[0]).statistics
        if stats is None or not stats.has_null_count or stats.null_count:
            return False
    span = _statistics_range(fragment, column)  # None unless every non-empty row group has a min and max
    return span is not None and (span[1] < start or span[0] >= end)


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _compatible(want: pa.DataType, got: pa.DataType) -> bool:
    """Whether `got` holds `want`'s kind of value: any integer width, or a float holding whole numbers (the
    cast refuses the other rows), for an integer; float32/64 or an integer for a float; but never text or
    bools for numbers, nor numbers for text: Arrow would cast "7" or True to 7 or 1 without a word."""
    if pa.types.is_null(got):
        return True  # an all-null column (e.g. pandas' empty object column): the null check names its rows
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(got)
    if pa.types.is_dictionary(got):
        got = got.value_type
    if pa.types.is_boolean(want):
        return pa.types.is_boolean(got)
    floats = pa.types.is_float32(got) or pa.types.is_float64(got)  # not float16: Spark cannot read it
    if pa.types.is_integer(want) or pa.types.is_floating(want):
        return pa.types.is_integer(got) or floats
    return pa.types.is_string(got) or pa.types.is_large_string(got) or pa.types.is_string_view(got)


def _bound(moment: datetime, ts_type: pa.DataType) -> pa.Scalar:
    moment = pd.Timestamp(moment)
    if ts_type.tz is None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return pa.scalar(moment, type=pa.timestamp("us", tz=ts_type.tz))
