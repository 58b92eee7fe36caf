"""Offline tables in PostgreSQL: `offline.<view>`, primary key (join key, event_timestamp).

A partition is replaced in one transaction (delete its feature timestamp, COPY the new rows),
under an advisory lock per (view, partition) so concurrent writers of the same partition queue.
A connection lost mid-write rolls the transaction back (StoreUnavailableError names the view and
partition); if it is lost during COMMIT, the server may have committed: old rows or new, never a mix.
"""

from __future__ import annotations

import io
from datetime import date

import pandas as pd
import pyarrow as pa
from psycopg import sql

from feature_platform.compute.window_aggregate import EVENT_TIMESTAMP
from feature_platform.config import OFFLINE_SCHEMA, Settings
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.offline import OfflineStore
from feature_platform.stores.postgres import connect
from feature_platform.stores.schema import arrow_schema, sql_columns
from feature_platform.stores.unavailable import store_errors


class PostgresOfflineStore(OfflineStore):
    kind = "postgres"

    def __init__(self, settings: Settings):
        self.settings = settings
        self._ready: set[str] = set()

    def _table(self, spec: FeatureViewSpec) -> sql.Composed:
        return sql.Identifier(OFFLINE_SCHEMA, spec.name)

    def _ensure(self, conn, spec: FeatureViewSpec) -> None:
        if spec.name in self._ready:
            return
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(typ)) for name, typ in sql_columns(spec)
        )
        key = sql.SQL(", ").join([sql.Identifier(spec.entity.join_key), sql.Identifier(EVENT_TIMESTAMP)])
        # IF NOT EXISTS is not safe against a concurrent creator (PostgreSQL raises UniqueViolation on its
        # catalog): writers in other processes queue on this lock until the first one's DDL committed.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("feature_platform/offline-ddl",))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(OFFLINE_SCHEMA)))
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(self._table(spec), cols, key)
        )
        conn.commit()
        self._ready.add(spec.name)

    def write_partition(self, spec: FeatureViewSpec, day: date, rows: pd.DataFrame) -> None:
        columns = self.columns(spec)
        buf = io.StringIO()
        rows[columns].to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f%z")
        doing = f"writing partition {day} of {spec.name!r} offline (all or nothing: re-run it)"
        with store_errors(self.settings, doing), connect(self.settings) as conn:
            self._ensure(conn, spec)
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{spec.name}/{day.isoformat()}",))
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} = %s").format(self._table(spec), sql.Identifier(EVENT_TIMESTAMP)),
                    (self.partition_timestamp(day).to_pydatetime(),),
                )
                copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N')").format(
                    self._table(spec), sql.SQL(", ").join(map(sql.Identifier, columns))
                )
                with conn.cursor().copy(copy_sql) as copy:
                    copy.write(buf.getvalue())

    def write_batch(self, spec: FeatureViewSpec, batch_id: str, rows: pd.DataFrame) -> None:
        """Upsert on (join key, event_timestamp): replaying a batch changes nothing."""
        columns = self.columns(spec)
        key = [spec.entity.join_key, EVENT_TIMESTAMP]
        rows = rows.drop_duplicates(key, keep="last")
        buf = io.StringIO()
        rows[columns].to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f%z")
        staging = sql.Identifier(f"_batch_{spec.name}")
        updates = sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in columns if c not in key
        )
        with store_errors(self.settings, f"writing batch {batch_id} of {spec.name!r} offline"), connect(self.settings) as conn:
            self._ensure(conn, spec)
            with conn.transaction():
                conn.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(staging, self._table(spec)))
                copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N')").format(
                    staging, sql.SQL(", ").join(map(sql.Identifier, columns)))
                with conn.cursor().copy(copy_sql) as copy:
                    copy.write(buf.getvalue())
                conn.execute(sql.SQL("INSERT INTO {t} SELECT * FROM {s} ON CONFLICT ({k}) DO UPDATE SET {u}").format(
                    t=self._table(spec), s=staging, k=sql.SQL(", ").join(map(sql.Identifier, key)), u=updates))

    def read(self, spec: FeatureViewSpec, start: date | None = None, end: date | None = None) -> pd.DataFrame:
        lo, hi = self.time_bounds(spec, start, end)
        return self._read_between(spec, None if lo is None else lo.to_pydatetime(), None if hi is None else hi.to_pydatetime())

    def register_duckdb(self, con, spec: FeatureViewSpec, name: str, lo: pd.Timestamp, hi: pd.Timestamp) -> None:
        table = pa.Table.from_pandas(self._read_between(spec, lo.to_pydatetime(), hi.to_pydatetime()),
                                     schema=arrow_schema(spec, reading=True), preserve_index=False)
        con.register(name, table)

    def _read_between(self, spec: FeatureViewSpec, lo, hi) -> pd.DataFrame:
        columns = self.columns(spec)
        query = sql.SQL(
            "SELECT {} FROM {} WHERE ({ts} >= %(lo)s OR %(lo)s IS NULL) AND ({ts} <= %(hi)s OR %(hi)s IS NULL) "
            "ORDER BY {ts}, {key}"
        ).format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            self._table(spec),
            ts=sql.Identifier(EVENT_TIMESTAMP),
            key=sql.Identifier(spec.entity.join_key),
        )
        with connect(self.settings) as conn:
            self._ensure(conn, spec)
            records = conn.execute(query, {"lo": lo, "hi": hi}).fetchall()
        frame = pd.DataFrame.from_records(records, columns=columns)
        table = pa.Table.from_pandas(frame, schema=arrow_schema(spec, reading=True), preserve_index=False)
        # Without the pandas metadata from_pandas recorded (psycopg's timestamps are datetime64[ns, Etc/UTC]), the
        # frame gets the offline schema's dtypes, as the Parquet store's reads do: timestamps datetime64[us, UTC].
        return table.replace_schema_metadata(None).to_pandas()

    def newest_timestamp(self, spec: FeatureViewSpec) -> pd.Timestamp | None:
        query = sql.SQL("SELECT max({ts}) FROM {}").format(self._table(spec), ts=sql.Identifier(EVENT_TIMESTAMP))
        with connect(self.settings) as conn:
            self._ensure(conn, spec)
            newest = conn.execute(query).fetchone()[0]
        return None if newest is None else pd.Timestamp(newest).tz_convert("UTC")

    def _exists(self, conn, spec: FeatureViewSpec) -> bool:
        qualified = sql.Identifier(OFFLINE_SCHEMA, spec.name).as_string(conn)
        return conn.execute("SELECT to_regclass(%s)", (qualified,)).fetchone()[0] is not None

    def partitions(self, spec: FeatureViewSpec) -> list[date]:
        query = sql.SQL("SELECT DISTINCT {ts} FROM {} ORDER BY 1").format(
            self._table(spec), ts=sql.Identifier(EVENT_TIMESTAMP)
        )
        with connect(self.settings) as conn:
            if not self._exists(conn, spec):
                return []  # never written (and listing partitions creates nothing)
            stamps = [r[0] for r in conn.execute(query).fetchall()]
        return [(pd.Timestamp(t).tz_convert("UTC") - pd.Timedelta(days=1)).date() for t in stamps]

    def sync_columns(self, spec: FeatureViewSpec) -> list[str]:
        """Bring an existing table in line with an additive change of `spec`: add the new feature columns
        (nullable: partitions written before have no value for them) and drop NOT NULL where the spec now
        allows nulls. Returns the statements run."""
        done: list[str] = []
        with connect(self.settings) as conn:
            if not self._exists(conn, spec):
                return done
            rows = conn.execute(
                "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s", (OFFLINE_SCHEMA, spec.name)).fetchall()
            existing = {name: nullable == "YES" for name, nullable in rows}
            types = dict(sql_columns(spec))
            with conn.transaction():
                for f in spec.fields:
                    if f.name not in existing:
                        stmt = sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                            self._table(spec), sql.Identifier(f.name), sql.SQL(types[f.name].replace(" NOT NULL", "")))
                    elif f.nullable and not existing[f.name]:
                        stmt = sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(
                            self._table(spec), sql.Identifier(f.name))
                    else:
                        continue
                    conn.execute(stmt)
                    done.append(stmt.as_string(conn))
        self._ready.discard(spec.name)
        return done
