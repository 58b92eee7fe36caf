"""Point-in-time correct joins of feature tables onto an entity frame, in DuckDB.

For every entity row at time t and every feature view: the row of that entity with the latest
feature timestamp in `[t - ttl, t]` (both ends inclusive, as Feast does), ties on feature timestamp
broken by the latest created timestamp; otherwise null. Proven equal to Feast's
`get_historical_features` by a property-based test (feature_platform_tests/test_point_in_time.py).

The plan follows the table's timestamp shape. Any table: an ASOF join over the rows some entity row can
see. A daily batch view (`ViewJoin.daily`: one row per key and partition, every timestamp a UTC midnight):
the few midnights within each entity row's TTL are its only candidates, so a hash join on (key, midnight)
picks them and the latest one present wins; no sort of the feature table, a fraction of the memory. Both
plans are proven equal on such tables (test_point_in_time.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import duckdb
import pandas as pd

from feature_platform.vocabulary import CREATED_TIMESTAMP, EVENT_TIMESTAMP

ROW = "__fp_row"


@dataclass(frozen=True)
class ViewJoin:
    """One feature view to join: its table (a DuckDB relation name), key, TTL and wanted columns."""

    table: str  # name of a relation registered on the connection
    join_key: str
    ttl: timedelta
    features: tuple[str, ...]  # columns of `table`
    outputs: tuple[str, ...]  # the column names they get in the result
    unique: bool = False  # (key, timestamp) is unique in `table` (batch views): skip the created-timestamp dedup
    # Every timestamp of `table` is a UTC midnight and (key, timestamp) is unique (a daily batch view's
    # partitions): joined by (key, candidate midnight) instead of ASOF.
    daily: bool = False


def point_in_time_join(con: duckdb.DuckDBPyConnection, entity_df: pd.DataFrame, joins: Sequence[ViewJoin]) -> pd.DataFrame:
    """Feature columns for `entity_df` (same row count and order), one per `ViewJoin.outputs` entry.

    `entity_df` must hold every join key and a tz-aware `event_timestamp`. Returns only the
    feature columns, positionally aligned with `entity_df`; callers attach them to their frame.
    """
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # it would print into logs
    keys = sorted({j.join_key for j in joins})
    entities = pd.DataFrame({k: entity_df[k].to_numpy() for k in keys})
    entities[EVENT_TIMESTAMP] = entity_df[EVENT_TIMESTAMP].array  # .to_numpy() would box every value
    entities[ROW] = range(len(entities))
    con.register("__fp_entities", entities)

    selects, froms = [], ["__fp_entities AS e"]
    for i, j in enumerate(joins):
        alias = f"f{i}"
        ttl_us = int(j.ttl / timedelta(microseconds=1))
        ttl = f"to_microseconds({ttl_us}::BIGINT)"
        k, ts = _q(j.join_key), _q(EVENT_TIMESTAMP)
        if j.daily:
            froms.append(f"LEFT JOIN {_daily_candidates(j, ttl)} AS {alias} ON e.{ROW} = {alias}.{ROW}")
            selects += [f"{alias}.{_q(f)} AS {_q(o)}" for f, o in zip(j.features, j.outputs)]
            continue
        # Only rows that some entity row can see: per key, within [its earliest t - ttl, its latest t].
        # This prunes most of the table before the dedup and the ASOF join (a measured 5x, 1/5 the memory).
        bounds = f"(SELECT {k}, min({ts}) - {ttl} AS lo, max({ts}) AS hi FROM __fp_entities GROUP BY {k})"
        latest = (
            f"(SELECT v.{k}, v.{ts}, {', '.join('v.' + _q(f) for f in j.features)} FROM {j.table} AS v "
            f"JOIN {bounds} AS b ON v.{k} = b.{k} AND v.{ts} BETWEEN b.lo AND b.hi"
            + ("" if j.unique else f" QUALIFY row_number() OVER (PARTITION BY v.{k}, v.{ts} "
                                   f"ORDER BY v.{_q(CREATED_TIMESTAMP)} DESC NULLS LAST) = 1")
            + ")"
        )
        froms.append(f"ASOF LEFT JOIN {latest} AS {alias} ON e.{k} = {alias}.{k} AND e.{ts} >= {alias}.{ts}")
        within = f"e.{ts} - {alias}.{ts} <= {ttl}"
        for feature, output in zip(j.features, j.outputs):
            selects.append(f"CASE WHEN {within} THEN {alias}.{_q(feature)} END AS {_q(output)}")
    query = f"SELECT e.{ROW}, {', '.join(selects)} FROM {' '.join(froms)} ORDER BY e.{ROW}"
    try:
        return con.execute(query).df().drop(columns=[ROW])
    finally:
        con.unregister("__fp_entities")


def _daily_candidates(j: ViewJoin, ttl: str) -> str:
    """Per entity row, the features of the latest midnight in `[t - ttl, t]` at which the table has its key:
    the midnights are enumerated (at most ttl in days + 1), joined on (key, midnight), the latest kept."""
    k, ts = _q(j.join_key), _q(EVENT_TIMESTAMP)
    days = j.ttl // timedelta(days=1) + 1
    candidates = (f"(SELECT e.{ROW}, e.{k}, date_trunc('day', e.{ts}) - to_days(d.n::INTEGER) AS {ts} "
                  f"FROM __fp_entities AS e, range({days}) AS d(n) "
                  f"WHERE e.{ts} - (date_trunc('day', e.{ts}) - to_days(d.n::INTEGER)) <= {ttl})")
    return (f"(SELECT c.{ROW}, {', '.join('v.' + _q(f) for f in j.features)} FROM {candidates} AS c "
            f"JOIN {j.table} AS v ON v.{k} = c.{k} AND v.{ts} = c.{ts} "
            f"QUALIFY row_number() OVER (PARTITION BY c.{ROW} ORDER BY c.{ts} DESC) = 1)")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
