"""Offline tables in PostgreSQL: `offline.<view>`, primary key (join key, event_timestamp).

A partition is replaced in one transaction (delete its feature timestamp, COPY the new rows),
under an advisory lock per (view, partition) so concurrent writers of the same partition queue.
A connection lost mid-write rolls the transaction back (StoreUnavailableError names the view and
partition); if it is lost during COMMIT, the server may have committed: old rows or new, never a mix.

A range run's journal (`partition_writes`) is an unlogged table `offline_undo.<view>_<run>`: each
partition's replacement moves its old rows there and adds a marker row (a null key) in the same
transaction, so the journal knows exactly which replacements committed, even one whose COMMIT answer was
lost; restoring is one transaction, dropping the table forgets the journal.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Collection
from datetime import date

import pandas as pd
import pyarrow as pa
from psycopg import sql

from feature_platform.config import OFFLINE_SCHEMA, Settings
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.offline import OfflineStore, PartitionWrites
from feature_platform.stores.postgres import connect
from feature_platform.stores.schema import arrow_schema, sql_columns
from feature_platform.stores.unavailable import store_errors
from feature_platform.vocabulary import EVENT_TIMESTAMP

UNDO_SCHEMA = "offline_undo"  # range runs' journals, out of the offline schema Feast and readers see
_DDL_LOCK = "feature_platform/offline-ddl"


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
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_DDL_LOCK,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(OFFLINE_SCHEMA)))
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(self._table(spec), cols, key)
        )
        conn.commit()
        self._ready.add(spec.name)

    def write_partition(self, spec: FeatureViewSpec, day: date, rows: pd.DataFrame) -> None:
        self._replace(spec, day, rows)

    def partition_writes(self, spec: FeatureViewSpec) -> PartitionWrites:
        return _PostgresPartitionWrites(self, spec)

    def _replace(self, spec: FeatureViewSpec, day: date, rows: pd.DataFrame, undo: sql.Composed | None = None) -> None:
        """Replace partition `day` in one transaction; with `undo`, its old rows and a marker go there."""
        columns = self.columns(spec)
        buf = io.StringIO()
        rows[columns].to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f%z")
        doing = f"writing partition {day} of {spec.name!r} offline (all or nothing: re-run it)"
        stamp = self.partition_timestamp(day).to_pydatetime()
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        with store_errors(self.settings, doing), connect(self.settings) as conn:
            self._ensure(conn, spec)
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{spec.name}/{day.isoformat()}",))
                delete = sql.SQL("DELETE FROM {} WHERE {} = %s").format(self._table(spec), sql.Identifier(EVENT_TIMESTAMP))
                if undo is None:
                    conn.execute(delete, (stamp,))
                else:
                    conn.execute(sql.SQL("WITH old AS ({} RETURNING {}) INSERT INTO {} ({}) SELECT {} FROM old").format(
                        delete, names, undo, names, names), (stamp,))
                    conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES (%s)").format(undo, sql.Identifier(EVENT_TIMESTAMP)),
                                 (stamp,))
                copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N')").format(
                    self._table(spec), names
                )
                with conn.cursor().copy(copy_sql) as copy:
                    copy.write(buf.getvalue())

    def write_batch(self, spec: FeatureViewSpec, batch_id: str, rows: pd.DataFrame) -> None:
        """Upsert on (join key, event_timestamp), the last write winning: a replayed or retried event is
        stored once (the Parquet store does the same per event day)."""
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

    def spark_frame(self, spark, spec: FeatureViewSpec, lo: pd.Timestamp, hi: pd.Timestamp):
        # No JDBC driver on Spark's classpath: the rows are read here, on the driver, and handed over as Arrow.
        from feature_platform.compute.spark_point_in_time import arrow_offline_frame

        return arrow_offline_frame(spark, self._read_between(spec, lo.to_pydatetime(), hi.to_pydatetime()), spec)

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


class _PostgresPartitionWrites(PartitionWrites):
    def __init__(self, store: PostgresOfflineStore, spec: FeatureViewSpec):
        self.store, self.spec = store, spec
        self.undo = sql.Identifier(UNDO_SCHEMA, f"{spec.name[:40]}_{uuid.uuid4().hex[:16]}")
        self.created = False
        self.days: set[date] = set()  # every day a write was attempted for, failed ones included

    def write(self, day: date, rows: pd.DataFrame) -> None:
        if not self.created:
            self._create()
        self.days.add(day)  # before the write: a write whose COMMIT was sent but not answered may still land
        self.store._replace(self.spec, day, rows, undo=self.undo)

    def _create(self) -> None:
        store, spec = self.store, self.spec
        columns = sql.SQL(", ").join(map(sql.Identifier, store.columns(spec)))
        with store_errors(store.settings, f"creating the run journal of {spec.name!r} offline"), \
                connect(store.settings) as conn:
            store._ensure(conn, spec)
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_DDL_LOCK,))
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(UNDO_SCHEMA)))
            # CREATE TABLE AS copies no NOT NULL: marker rows have a null key.
            conn.execute(sql.SQL("CREATE UNLOGGED TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
                self.undo, columns, store._table(spec)))
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(
                self.undo, sql.Literal(f"undo journal of a range run of offline.{spec.name}")))
            conn.commit()
        self.created = True

    def settle(self, keep: Collection[date]) -> None:
        if not self.created:
            return
        store, spec = self.store, self.spec
        key, ts = sql.Identifier(spec.entity.join_key), sql.Identifier(EVENT_TIMESTAMP)
        names = sql.SQL(", ").join(map(sql.Identifier, store.columns(spec)))
        kept = {store.partition_timestamp(d) for d in keep}
        with store_errors(store.settings, f"settling the run journal of {spec.name!r} offline"), \
                connect(store.settings) as conn, conn.transaction():
            # The writers' locks of every day this run wrote, in one order, before the journal is read: a write
            # whose connection was lost after COMMIT was sent still holds its day's lock until the server has
            # committed or aborted it, so its journal rows are seen (and its day restored) if it landed.
            for day in sorted(self.days):
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{spec.name}/{day.isoformat()}",))
            touched = [r[0] for r in conn.execute(sql.SQL("SELECT DISTINCT {} FROM {} WHERE {} IS NULL ORDER BY 1").format(
                ts, self.undo, key)).fetchall()]
            restore = [t for t in touched if pd.Timestamp(t).tz_convert("UTC") not in kept]
            if restore:
                conn.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(store._table(spec), ts), (restore,))
                conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE {} IS NOT NULL AND {} = ANY(%s)").format(
                    store._table(spec), names, names, self.undo, key, ts), (restore,))
            conn.execute(sql.SQL("DROP TABLE {}").format(self.undo))
        self.created = False
        self.days = set()
