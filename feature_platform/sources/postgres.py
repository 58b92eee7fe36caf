"""PostgreSQL sources: a declared table or query, read for one time range with the range in its `WHERE`.

The query runs as a subquery (`SELECT <declared columns> FROM (<query>) AS source WHERE <time> >= %s AND
<time> < %s`), so PostgreSQL uses the table's index on the time column and only the window's rows travel.
The rows are checked by the same declared rules as a Parquet source's, naming the source and the column.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa

from feature_platform.errors import SourceDataError
from feature_platform.sources.rows import SourceRows, _reason

_FETCH_ROWS = 100_000  # rows per round trip of the server-side cursor: bounded memory on the way in


class PostgresSource(SourceRows):
    """A table or query on a PostgreSQL database (`connection`: the libpq string; secrets stay in the
    environment variable the source names)."""

    def __init__(self, spec, location: str, conninfo: str):
        super().__init__(spec, location)
        self.conninfo = conninfo

    @classmethod
    def of(cls, spec, default_conninfo: str) -> PostgresSource:
        """The source on the database its `connection` variable names, or on the platform's own."""
        conninfo = os.environ.get(spec.connection, "") if spec.connection is not None else default_conninfo
        return cls(spec, f"table {spec.table}" if spec.table else "query", conninfo)

    def _conninfo(self) -> str:
        """The connection string, checked when the source is read (building definitions needs none)."""
        if not self.conninfo:
            raise SourceDataError(f"{self.label}: environment variable {self.spec.connection} (its PostgreSQL "
                                  "connection string) is not set")
        return self.conninfo

    def statement(self):
        from psycopg import sql

        relation = self._relation()
        return sql.SQL("SELECT {} FROM {} WHERE {} >= %s AND {} < %s OR {} IS NULL").format(
            sql.SQL(", ").join(sql.Identifier(name) for name in self.schema.names), relation,
            *(sql.Identifier(self.timestamp),) * 3)

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows with `start <= time < end` (and rows without a time, which the checks refuse), in the declared
        schema; a missing column, a type the declared one cannot hold or a bad row raise `SourceDataError`."""
        import psycopg

        try:
            with _connect(self._conninfo()) as conn, conn.cursor(name="feature_platform_source") as cur:
                cur.itersize = _FETCH_ROWS
                cur.execute(self.statement(), (start, end))
                chunks = []
                while rows := cur.fetchmany(_FETCH_ROWS):
                    chunks.append(rows)
        except psycopg.Error as exc:
            raise SourceDataError(f"{self.label} {self.location} cannot be read: {_reason(exc)}") from exc
        rows = [row for chunk in chunks for row in chunk]
        columns = list(zip(*rows)) if rows else [() for _ in self.schema.names]
        arrays = {}
        for want, values in zip(self.schema, columns):
            try:
                arrays[want.name] = pa.array(values, type=_read_type(want.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise SourceDataError(f"{self.label} {self.location}: column {want.name!r} cannot be read as "
                                      f"{want.type}: {_reason(exc)}") from exc
        return self._normalized(pa.table(arrays), self.location)

    def time_range(self) -> tuple[datetime | None, datetime | None]:
        """The times of the log's first and last rows (an index on the time column answers at once)."""
        from psycopg import sql

        statement = sql.SQL("SELECT min({ts}), max({ts}) FROM {rel}").format(ts=sql.Identifier(self.timestamp),
                                                                            rel=self._relation())
        first, last = self._fetch(statement)[0]
        return _utc(first), _utc(last)

    def _fetch(self, statement, params=()) -> list[tuple]:
        """The rows of one statement, on a UTC session; a failure is the source's `SourceDataError`."""
        import psycopg

        try:
            with _connect(self._conninfo()) as conn:
                return conn.execute(statement, params).fetchall()
        except psycopg.Error as exc:
            raise SourceDataError(f"{self.label} {self.location} cannot be read: {_reason(exc)}") from exc

    def _relation(self):
        from psycopg import sql

        if self.spec.table is not None:
            return sql.SQL(".").join(sql.Identifier(part) for part in self.spec.table.split("."))
        return sql.SQL("({}) AS source").format(sql.SQL(self.spec.query))

    def rows_by_day(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows per UTC day with rows in `[start, end)`, and each day's newest time: (day, rows, newest)."""
        from psycopg import sql

        ts = sql.Identifier(self.timestamp)
        statement = sql.SQL("SELECT ({ts})::date AS day, count(*), max({ts}) FROM {rel} "
                            "WHERE {ts} >= %s AND {ts} < %s GROUP BY 1 ORDER BY 1").format(ts=ts, rel=self._relation())
        return pd.DataFrame(self._fetch(statement, (start, end)), columns=["day", "rows", "newest"])


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _connect(conninfo: str):
    """A connection whose session zone is UTC: a `timestamp` (without zone) column is read as UTC, as a
    Parquet source's naive times are, and days are UTC days."""
    import psycopg

    return psycopg.connect(conninfo, options="-c TimeZone=UTC")


def _read_type(want: pa.DataType) -> pa.DataType:
    """How psycopg's Python values are taken in: numbers as their column's own type (a NUMERIC 2.5 into an
    integer must be refused by the checked cast, not truncated), the rest as declared."""
    if pa.types.is_integer(want) or pa.types.is_floating(want):
        return None  # inferred: int, float or decimal as the column is; the checked cast follows
    return want
