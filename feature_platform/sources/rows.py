"""What every source kind shares: the declared row schema, the declared row rules, and the errors naming
the source, the file or table, the column and sample rows."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import pandera.errors
import pyarrow as pa
import pyarrow.compute as pc

from feature_platform.compat.pandera_internals import validate
from feature_platform.dtypes import INT64_MAX, arrow_type
from feature_platform.errors import SourceDataError
from feature_platform.sources.schema import source_rules, source_schema
from feature_platform.spec import SourceSpec

SAMPLE_ROWS = 3
STRING = pd.StringDtype("pyarrow")  # strings stay in Arrow buffers: a Python object each costs ~4x the memory



def arrow_schema(source: SourceSpec) -> pa.Schema:
    """The rows' schema: the declared columns in their order, then the timestamp (UTC, microseconds)."""
    return pa.schema([(c.name, arrow_type(c.dtype)) for c in source.columns]
                     + [(source.timestamp_column, pa.timestamp("us", tz="UTC"))])


class SourceRows:
    """A declared source at one location; subclasses read it (Parquet, PostgreSQL)."""

    def __init__(self, spec: SourceSpec, location: str):
        self.spec = spec
        self.location = str(location)
        self.schema = arrow_schema(spec)
        self.timestamp = spec.timestamp_column
        self.label = f"{spec.name} source"  # how every message names it: "sessions source <file>: ..."
        # Sample rows of an error show the columns that identify a row (`row_id`), and the time.
        self.key_columns = tuple(dict.fromkeys((*(spec.row_id or spec.column_names[:2]), self.timestamp)))

    def _normalized(self, table: pa.Table, file: str) -> pd.DataFrame:
        """The file's rows in the declared schema (naive times as UTC), as pandas (strings Arrow-backed),
        validated by the source's Pandera schema (`sources.schema.source_schema`): rows a cast would
        lose are refused with the rows breaking a rule, never truncated or wrapped."""
        lost: list[tuple[str, str, pa.ChunkedArray, pa.ChunkedArray]] = []  # (column, kind, mask, written values)
        columns = []
        for want in self.schema:
            values = table[want.name]
            if pa.types.is_dictionary(values.type):
                values = values.cast(values.type.value_type)
            if pa.types.is_timestamp(values.type) and values.type.tz is None:
                values = pc.assume_timezone(values, "UTC")
            kind = lossy(values.type, want.type)
            if kind is not None:
                bad = pc.fill_null(_lossy_mask(values, kind), False)
                if pc.any(bad).as_py():
                    lost.append((want.name, kind, bad, values))
                    # The refused rows get a harmless value so that the cast and the other checks run; they
                    # are reported with their written values.
                    values = pc.if_else(bad, pa.scalar(0, pa.int64()).cast(values.type), values)
            try:
                columns.append(values.cast(want.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SourceDataError(f"{self.label} {file}: column {want.name!r} cannot be read as {want.type}: "
                                      f"{_reason(exc)}") from exc
        table = pa.Table.from_arrays(columns, schema=self.schema)
        # Floats stay Arrow-backed while Pandera judges them, where a null (allowed when declared nullable)
        # and a NaN (never allowed) differ; they become numpy floats (null -> NaN) once validated.
        # A block per column: a consumer that deletes a column it is done with frees it (`rolling_window.events_of`).
        frame = table.to_pandas(types_mapper=self._validated_types.get, split_blocks=True)
        self._check_values(frame, table, file, lost)
        for name, dtype in self._float_columns.items():
            frame[name] = frame[name].to_numpy(dtype=dtype, na_value=np.nan)
        return frame

    @cached_property
    def _float_columns(self) -> dict[str, type]:
        return {f.name: f.type.to_pandas_dtype() for f in self.schema if pa.types.is_floating(f.type)}

    @cached_property
    def _validated_types(self) -> dict[pa.DataType, object]:
        return {pa.string(): STRING, pa.float64(): pd.ArrowDtype(pa.float64()),
                pa.float32(): pd.ArrowDtype(pa.float32())}

    def value_checks(self) -> list[tuple[str, str, object]]:
        """The declared row rules (`sources.schema.source_rules`): Pandera runs them on the pandas
        engine's rows, the Spark engine applies the same list."""
        return source_rules(self.spec)

    def _check_values(self, frame: pd.DataFrame, table: pa.Table, file: str, lost: list) -> None:
        """Every row must be complete and within its declared rules, or nothing is computed from the range:
        a null key or count would be dropped or summed as 0, a negative count or duration would shrink a
        sum or a mean, all without failing the schema of the computed features. `lost`: the rows a cast
        would have lost, with their written values. The details are only built on failure, in the rules'
        order, each with the first rows (as read) breaking it."""
        try:
            validate(source_schema(self.spec), frame, inplace=True)  # the source schema changes nothing: no copy
            failures = None
        except pandera.errors.SchemaErrors as exc:
            failures = exc.failure_cases
        if failures is None and not lost:
            return
        found = []
        for name, kind, mask, written in lost:
            rows = pc.indices_nonzero(pc.fill_null(mask, False))
            found.append((name, kind, len(rows), self._sample(table, name, rows, written)))
        if failures is not None:
            failures = failures[failures["schema_context"] == "Column"]
            for name, what, _ in self.value_checks():
                check = "not_nullable" if what == "null" else what
                rows = failures.loc[(failures["column"] == name) & (failures["check"] == check), "index"]
                if len(rows):
                    indices = pa.array(sorted(int(i) for i in rows), pa.int64())
                    found.append((name, what, len(indices), self._sample(table, name, indices, None)))
        raise self.rows_error(file, found)

    def _sample(self, table: pa.Table, name: str, rows: pa.Array, written) -> list[dict]:
        first = rows.slice(0, SAMPLE_ROWS)
        sample = table.take(first).select(self.shown(name)).to_pylist()
        if written is not None:
            for row, value in zip(sample, written.take(first).to_pylist()):
                row[name] = value
        return sample

    def shown(self, name: str) -> list[str]:
        """The columns of a sample row about `name`: the key columns, and `name`."""
        return [*self.key_columns, *([name] if name not in self.key_columns else [])]

    def rows_error(self, file: str, found: list[tuple[str, str, int, list[dict]]]) -> SourceDataError:
        """The one-line error for bad rows of `file`: per (column, what, count, sample rows), the first rows."""
        parts = [f"column {name!r}: {count} {what} value(s), first rows: {_shorten(sample)}"
                 for name, what, count, sample in found]
        return SourceDataError(f"{self.label} {file}: {len(found)} problem(s) in the rows read, nothing was "
                               f"computed: {'; '.join(parts)}")



# Casts that can lose information: their rows are refused, never rounded (the Spark engine applies the same rules).
FLOAT_EXACT = 2**53  # pyarrow's safe int -> float64 cast refuses |x| above this


def lossy(got: pa.DataType, want: pa.DataType) -> str | None:
    """What kind of value `got` may hold that `want` cannot: 'non-integer' (float -> int), 'out-of-range'
    (uint64 -> int64, int64 -> float64 beyond 2**53), 'sub-microsecond' (ns -> us), or None (lossless)."""
    if pa.types.is_dictionary(got):
        got = got.value_type
    if pa.types.is_integer(want) and pa.types.is_floating(got):
        return "non-integer"
    if pa.types.is_integer(want) and pa.types.is_uint64(got):
        return "out-of-range"
    if pa.types.is_floating(want) and pa.types.is_integer(got) and got.bit_width == 64:
        return "out-of-range"
    if pa.types.is_timestamp(want) and pa.types.is_timestamp(got) and got.unit == "ns":
        return "sub-microsecond"
    return None


def _lossy_mask(values: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    if kind == "non-integer":
        ok = pc.and_kleene(pc.is_finite(values), pc.equal(pc.floor(values), values))
        ok = pc.and_kleene(ok, pc.and_kleene(pc.greater_equal(values, -(2.0**63)), pc.less(values, 2.0**63)))
        return pc.invert(ok)
    if kind == "out-of-range":
        if pa.types.is_uint64(values.type):
            return pc.greater(values, pa.scalar(INT64_MAX, pa.uint64()))
        return pc.greater(pc.abs(pc.cast(values, pa.float64(), safe=False)), float(FLOAT_EXACT))
    nanos = pc.cast(values, pa.int64())  # sub-microsecond: not a multiple of 1000 ns (integer division truncates)
    return pc.not_equal(pc.subtract(nanos, pc.multiply(pc.divide(nanos, 1000), 1000)), 0)


def _shorten(rows: list[dict]) -> str:
    """Rows as text, with long values cut (a 1 MB session id would flood the run's log)."""
    return ", ".join("(" + ", ".join(f"{k}={_cut(v)}" for k, v in row.items()) + ")" for row in rows)


def _cut(value, limit: int = 80) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def _reason(exc: BaseException, limit: int = 300) -> str:
    """A library's error message on one line, cut (pyarrow's may span lines or quote whole values)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


