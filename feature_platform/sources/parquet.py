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
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from feature_platform.errors import SourceDataError
from feature_platform.sources.rows import SourceRows, _reason

log = logging.getLogger(__name__)



class ParquetSource(SourceRows):
    """One declared Parquet source at one location (a file, a directory, a glob or a filesystem URI)."""

    _footers: dict[str, _Footer] = {}  # by path, of the files the last listing (`files`) found (replaced, not changed)

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
            groups.setdefault(self._footers[fragment.path].types, []).append(fragment)
        frames = [self._read_files(self._holding(fragments, start, end), start, end) for fragments in groups.values()]
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True) if frames else self._normalized(self.schema.empty_table(), "")

    def _holding(self, fragments: list[ds.ParquetFileFragment], start: datetime,
                 end: datetime) -> list[ds.ParquetFileFragment]:
        """The files that may hold a row of `[start, end)` or a row without a time: all but those whose row-group
        statistics prove they hold neither (a range run's chunk scans its ~24 daily files, not the source's
        hundreds: the scan takes half the time). One is kept of a group with none, so it reads as before."""
        return [f for f in fragments if not _outside(self._footers[f.path], start, end)] or fragments[:1]

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
        self._footers = {fragment.path: self._check_file(fragment) for fragment in fragments}
        return fragments

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

        footer = self._footers.get(fragment.path)
        span = footer.span if footer is not None else _statistics_range(fragment, self.timestamp)
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

    @cached_property
    def _schema_key(self) -> bytes:
        """The declared schema as the footer cache's key: hashing a `pa.Schema` costs ~5 us, every file of every listing."""
        return self.schema.serialize().to_pybytes()

    def _check_file(self, fragment: ds.ParquetFileFragment) -> _Footer:
        """The file checked, and what its footer says (`_Footer`), once per version of it (path, mtime, size): a
        range run lists the source for every chunk it reads, and reading every file's footer each time took ~0.2 ms
        a file (0.5 s of a 92-day run over a year of daily files). A few facts are kept, not the footer (~33 KB a
        file in memory: 12 MB for a year of daily files)."""
        try:
            info = fragment.filesystem.get_file_info(fragment.path)
            key = (fragment.filesystem.type_name, fragment.path, info.mtime_ns, info.size, self._schema_key)
            footer = _FOOTERS.get(key)
            if footer is not None:
                return footer
            schema = fragment.physical_schema
        except (pa.ArrowException, OSError) as exc:
            raise SourceDataError(f"{self.label} {fragment.path} cannot be read as Parquet: {_reason(exc)}") from exc
        self._check_columns(schema, fragment.path)
        footer = _footer(fragment, schema, self.schema.names, self.timestamp)
        if footer.nulls:  # a row without a time falls outside every window: refused from the statistics alone
            raise SourceDataError(f"{self.label} {fragment.path}: column {self.timestamp!r}: {footer.nulls} null "
                                  "value(s); every row needs its time")
        if getattr(schema.field(self.timestamp).type, "tz", "") is None:  # once per file version, not per read
            log.warning("%s %s: %r is timezone-naive; reading it as UTC", self.label, fragment.path, self.timestamp)
        if len(_FOOTERS) > 100_000:
            _FOOTERS.clear()
        _FOOTERS[key] = footer
        return footer

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


class _Footer(NamedTuple):
    """What the reads need of a checked file's footer, for the declared schema: the types of the declared columns
    (files of the same types are scanned together), the span of its times by the row-group statistics (None
    where a group lacks them), its null times counted by them, and whether every group counts its null times."""

    types: tuple
    span: tuple[datetime, datetime] | None
    nulls: int
    nulls_counted: bool


# (filesystem, file, mtime_ns, size, declared schema) -> its `_Footer`, for the files that passed the checks.
_FOOTERS: dict[tuple, _Footer] = {}


def _footer(fragment, schema: pa.Schema, names: list[str], column: str) -> _Footer:
    metadata = fragment.metadata
    # The Parquet (leaf) column, by name: a nested column before it shifts the indices of the Arrow fields.
    leaves = [i for i in range(metadata.num_columns) if metadata.schema.column(i).path == column]
    nulls, counted = 0, bool(leaves)
    for i in range(metadata.num_row_groups):
        stats = metadata.row_group(i).column(leaves[0]).statistics if leaves else None
        if stats is not None and stats.has_null_count:
            nulls += stats.null_count
        else:
            counted = False
    return _Footer(tuple(schema.field(name).type for name in names), _statistics_range(fragment, column), nulls,
                   counted)

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


def _outside(footer: _Footer, start: datetime, end: datetime) -> bool:
    """Whether a file's statistics prove it holds no time in `[start, end)` and no null time."""
    return footer.nulls_counted and not footer.nulls and footer.span is not None and (
        footer.span[1] < start or footer.span[0] >= end)


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
