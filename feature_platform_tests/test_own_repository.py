"""A team's own feature repository (tests/repos/shop), unlike the demo: orders in a PostgreSQL table keyed by a
string customer id (30-day window), page views as a hive-partitioned Parquet dataset (3-day window), a push
view with string keys. Every partition equals a naive recomputation written here; online vectors, training
sets, pushes and stock Feast agree; bad definitions and missing raw days are refused before anything is written."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

import feature_platform as fp
from feature_platform.config import Settings
from feature_platform.repo import load_repository
from feature_platform.spec import SpecError
from feature_platform_tests.helpers import make_embedded_settings, require, services_settings_in

SHOP = Path(__file__).parent / "repos" / "shop"
FIRST, LAST = date(2026, 3, 1), date(2026, 3, 20)  # the orders source's declared start is 2026-03-01
CUSTOMERS = ["c-001", "c-002", "ç 3", "c-004", "customer/5", "c-006", "", "c-008"]  # "" and odd text are keys too
PAYMENTS = ["card", "paypal", "voucher"]


def orders_frame(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    n = 0
    for day in pd.date_range(FIRST, LAST, freq="D"):
        for _ in range(int(rng.integers(3, 9))):
            n += 1
            customer = CUSTOMERS[int(rng.integers(0, len(CUSTOMERS)))]
            if day.day % 7 == 0 and customer == "c-002":
                continue  # c-002 goes quiet sometimes: closing rows
            rows.append({"order_id": f"o{n % 97}", "customer_id": customer,  # ids repeat: count vs count_distinct
                         "amount": float(rng.integers(1, 500)) / 4, "items": int(rng.integers(1, 5)),
                         "payment_method": PAYMENTS[int(rng.integers(0, 3))],
                         "ordered_at": day.tz_localize("UTC") + pd.Timedelta(seconds=int(rng.integers(0, 86_400)))})
    return pd.DataFrame(rows).astype({"ordered_at": "datetime64[us, UTC]"})


def page_views_frame(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for day in pd.date_range(FIRST, LAST, freq="D"):
        for _ in range(int(rng.integers(5, 15))):
            rows.append({"visitor_id": int(rng.integers(1, 9)), "page": ["home", "cart", "faq", "shoes"][int(rng.integers(0, 4))],
                         "dwell_sec": None if rng.random() < 0.2 else float(rng.integers(0, 300)),
                         "viewed_at": day.tz_localize("UTC") + pd.Timedelta(seconds=int(rng.integers(0, 86_400)))})
    return pd.DataFrame(rows).astype({"viewed_at": "datetime64[us, UTC]", "dwell_sec": "float64"})


def write_page_views(home: Path, views: pd.DataFrame) -> Path:
    """Hive-style: one `date=YYYY-MM-DD/` directory per day."""
    root = home / "page_views"
    for day, rows in views.groupby(views["viewed_at"].dt.date):
        directory = root / f"date={day.isoformat()}"
        directory.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(directory / "part-0.parquet", index=False)
    return root


@pytest.fixture
def orders_dsn(monkeypatch):
    """A PostgreSQL database of the shop holding `shop.orders`, named by SHOP_ORDERS_DSN (the source's connection)."""
    base = Settings.from_env({"FEATURE_PLATFORM_PROFILE": "services"})
    require("PostgreSQL", lambda: psycopg.connect(base.pg_conninfo("postgres")).close())
    name = f"fp_shop_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = base.pg_conninfo(name)
    orders = orders_frame()
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE SCHEMA shop")
        conn.execute("CREATE TABLE shop.orders (order_id text, customer_id text, amount double precision, "
                     "items integer, payment_method text, ordered_at timestamptz)")
        conn.execute("CREATE INDEX ON shop.orders (ordered_at)")
        with conn.cursor().copy("COPY shop.orders FROM STDIN") as copy:
            for row in orders.itertuples(index=False):
                copy.write_row(tuple(row))
    monkeypatch.setenv("SHOP_ORDERS_DSN", dsn)
    yield dsn
    with psycopg.connect(base.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["embedded", pytest.param("services", marks=pytest.mark.services)])
def shop(request, tmp_path, orders_dsn):
    """The shop repository on a profile, with its page views written in the platform's home."""
    if request.param == "embedded":
        settings = make_embedded_settings(tmp_path).with_(repo=str(SHOP))
        write_page_views(settings.home, page_views_frame())
        yield fp.FeaturePlatform(settings)
    else:
        with services_settings_in(tmp_path) as settings:
            settings = settings.with_(repo=str(SHOP))
            write_page_views(settings.home, page_views_frame())
            yield fp.FeaturePlatform(settings)


# --- the definition, recomputed naively --------------------------------------------------------------------

def naive_partition(raw: pd.DataFrame, spec, day: date) -> pd.DataFrame:
    """Partition `day` of `spec` from the raw rows, by hand: each entity with rows in the window, plus closing
    rows for entities whose window just became empty."""
    agg = spec.aggregation
    key, ts, days = spec.entity.join_key, agg.timestamp_column, agg.window.days
    end = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)

    def window(stop):
        return raw[(raw[ts] >= stop - pd.Timedelta(days=days)) & (raw[ts] < stop)]

    now, before = window(end), window(end - pd.Timedelta(days=1))
    rows = []
    for entity in sorted(set(now[key]) | set(before[key])):
        mine = now[now[key] == entity]
        row = {key: entity}
        for a in agg.aggs:
            values = mine[a.column]
            if mine.empty:
                row[a.feature] = a.empty_value
            elif a.fn == "count":
                row[a.feature] = int(values.notna().sum())
            elif a.fn == "count_distinct":
                row[a.feature] = int(values.nunique())
            elif a.fn == "sum":
                row[a.feature] = values.sum()
            elif a.fn == "mean":
                row[a.feature] = values.mean() if values.notna().any() else None
            elif a.fn == "min":
                row[a.feature] = values.min() if values.notna().any() else None
            elif a.fn == "max":
                row[a.feature] = values.max() if values.notna().any() else None
            elif a.fn == "mode":
                counts = values.value_counts()
                row[a.feature] = sorted(counts[counts == counts.max()].index)[0]
        rows.append(row)
    return pd.DataFrame(rows, columns=[key, *spec.feature_names])


def assert_partitions_match(platform, view: str, raw: pd.DataFrame, first: date, last: date) -> None:
    spec = platform.view(view)
    table = platform.offline_table(view, first, last)
    for day in pd.date_range(first, last, freq="D").date:
        got = table[table["event_timestamp"] == pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)]
        got = got[[spec.entity.join_key, *spec.feature_names]].sort_values(spec.entity.join_key).reset_index(drop=True)
        want = naive_partition(raw, spec, day)
        assert len(got) == len(want), (view, day, got, want)
        for column in want.columns:
            a, b = got[column].tolist(), want[column].tolist()
            for x, y in zip(a, b):
                if y is None or (isinstance(y, float) and np.isnan(y)):
                    assert x is None or pd.isna(x), (view, day, column, a, b)
                elif isinstance(y, float):
                    assert x == pytest.approx(y, rel=1e-6), (view, day, column, a, b)
                else:
                    assert x == y, (view, day, column, a, b)


# --- tests -------------------------------------------------------------------------------------------------

def test_a_postgres_source_with_string_keys_materializes_its_definition(shop):
    shop.materialize("customer_orders_30d", FIRST, LAST)
    assert_partitions_match(shop, "customer_orders_30d", orders_frame(), FIRST, LAST)


def test_a_hive_parquet_source_materializes_its_definition(shop):
    shop.materialize("page_activity_3d", FIRST + timedelta(days=3), LAST)
    assert_partitions_match(shop, "page_activity_3d", page_views_frame(), FIRST + timedelta(days=3), LAST)


def test_string_keys_online_training_push_and_stock_feast_agree(shop):
    shop.materialize("customer_orders_30d", FIRST, LAST)
    last = naive_partition(orders_frame(), shop.view("customer_orders_30d"), LAST).set_index("customer_id")
    features = ["customer_orders_30d:spend_30d", "customer_orders_30d:orders_30d", "customer_orders_30d:usual_payment"]
    now = datetime.combine(LAST, datetime.min.time(), tzinfo=timezone.utc) + timedelta(days=1, hours=1)
    rows = [{"customer_id": c} for c in last.index]
    online = shop.online_features(features, rows, now=now)
    assert online["spend_30d"].tolist() == pytest.approx(last["spend_30d"].tolist())
    assert online["usual_payment"].tolist() == last["usual_payment"].tolist()
    # The same columns and values from the feature service, offline, point in time.
    entity_df = pd.DataFrame({"customer_id": list(last.index), "event_timestamp": now})
    training = shop.training_set(entity_df, "shop_features")
    assert training["orders_30d"].tolist() == last["orders_30d"].tolist()
    # Stock Feast reads the platform's online rows with string keys.
    shop.apply()
    stock = shop.runtime.feast.get_online_features(features=features, entity_rows=rows).to_df()
    assert stock["spend_30d"].tolist() == pytest.approx(last["spend_30d"].tolist())
    assert stock["usual_payment"].tolist() == last["usual_payment"].tolist()
    # A push with string keys lands online and offline.
    batch = pd.DataFrame({"customer_id": ["ç 3", ""], "cart_items": [2, 0], "cart_value": [19.5, 0.0],
                          "event_timestamp": pd.Timestamp.now(tz="UTC").floor("s")})
    shop.push("customer_cart_events", batch, direct=True)
    cart = shop.online_features(["customer_cart:cart_items", "customer_cart:cart_value"],
                                [{"customer_id": "ç 3"}, {"customer_id": ""}, {"customer_id": "nobody"}])
    assert cart["cart_items"].tolist()[:2] == [2, 0] and pd.isna(cart["cart_items"].iloc[2])
    shop.ingest_pending("customer_cart_events")  # the direct log reaches the offline table as the sensor drains it
    assert sorted(shop.offline_table("customer_cart")["customer_id"]) == ["", "ç 3"]


def test_the_cli_reads_a_string_entity(shop, capsys):
    from feature_platform.cli import main

    shop.materialize("customer_orders_30d", LAST, LAST)
    import os

    env = shop.settings.as_env()
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert main(["online", "--view", "customer_orders_30d", "--entity", "ç 3", "--json"]) == 0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    out = capsys.readouterr().out
    # Found by its string key (its value is past the view's TTL by now: "expired", with its feature time).
    assert '"feature": "spend_30d"' in out and '"event_timestamp": "2026-03-21T00:00:00+00:00"' in out


def test_days_before_the_declared_start_are_empty_windows_not_missing_days(shop):
    """Orders start 2026-03-01 (declared): the first partitions' 30-day windows reach back into February,
    where no data is real, and are computed."""
    shop.materialize("customer_orders_30d", FIRST, FIRST + timedelta(days=1))
    assert len(shop.offline_table("customer_orders_30d")) > 0


def test_a_missing_raw_day_inside_a_window_refuses_the_run_and_writes_nothing(tmp_path, orders_dsn):
    settings = make_embedded_settings(tmp_path).with_(repo=str(SHOP))
    root = write_page_views(settings.home, page_views_frame())
    gone = date(2026, 3, 12)
    for file in (root / f"date={gone.isoformat()}").iterdir():
        file.unlink()
    (root / f"date={gone.isoformat()}").rmdir()
    platform = fp.FeaturePlatform(settings)
    with pytest.raises(fp.MissingSourceDaysError, match=r"page_activity_3d.*partition 2026-03-12.*2026-03-12"):
        platform.materialize("page_activity_3d", date(2026, 3, 8), date(2026, 3, 16))
    assert platform.offline_table("page_activity_3d").empty
    # The days whose windows are complete are computed.
    platform.materialize("page_activity_3d", date(2026, 3, 8), date(2026, 3, 10))
    assert len(platform.offline_table("page_activity_3d")) > 0
    # A day not arrived yet (after the newest) is missing too: a daily run before its data landed fails.
    with pytest.raises(fp.MissingSourceDaysError, match=r"partition 2026-03-21.*2026-03-21"):
        platform.materialize("page_activity_3d", date(2026, 3, 21), date(2026, 3, 21))


BAD_REPOS = {
    "unknown source": ("source='nowhere'", "feature view 'v': source 'nowhere' is not declared"),
    "missing column": ("column='missing_column'", r"feature view 'v', source 'events': column 'missing_column' "
                                                  r"\(aggregated into 'n'\) is not a column of the source"),
    "sum of a string": ("fn='sum', column='page'", "feature view 'v', source 'events': column 'page': sum of a string "
                                                   "column is not defined"),
}


@pytest.mark.parametrize("case", list(BAD_REPOS))
def test_a_bad_definition_is_a_spec_error_at_load_naming_view_source_and_column(tmp_path, case):
    change, message = BAD_REPOS[case]
    values = {"source": "'events'", "fn": "'count'", "column": "'page'"}
    for part in change.split(", "):
        name, value = part.split("=")
        values[name] = value
    (tmp_path / f"bad_{case.replace(' ', '_')}.py").write_text(f'''
from datetime import timedelta
from feature_platform.spec import Agg, Entity, FeatureViewSpec, Field, SourceSpec, WindowAggregation

EVENTS = SourceSpec(name="events", path="events", timestamp_column="at",
                    columns=(Field("k", "int64"), Field("page", "string")))
V = FeatureViewSpec(name="v", entity=Entity("e", "k"), fields=(Field("n", "int64"),), ttl=timedelta(days=1),
                    owner="t", freshness_sla=timedelta(hours=26), version=1, description="",
                    aggregation=WindowAggregation(source={values["source"]}, timestamp_column="at",
                                                  window=timedelta(days=1),
                                                  aggs=(Agg("n", {values["fn"]}, {values["column"]}),)))
''')
    with pytest.raises(SpecError, match=message):
        load_repository(str(tmp_path / f"bad_{case.replace(' ', '_')}.py"))


def test_an_unreadable_source_fails_before_writing(tmp_path, monkeypatch, orders_dsn):
    monkeypatch.setenv("SHOP_ORDERS_DSN", "host=127.0.0.1 port=1 dbname=nothing connect_timeout=2")
    platform = fp.FeaturePlatform(make_embedded_settings(tmp_path).with_(repo=str(SHOP)))
    with pytest.raises(fp.SourceDataError, match=r"orders source table shop\.orders cannot be read"):
        platform.materialize("customer_orders_30d", FIRST, FIRST)
    assert platform.offline_table("customer_orders_30d").empty


def test_sources_are_observed_day_by_day_by_the_api_and_the_sensor(tmp_path, orders_dsn):
    import dagster as dg

    from feature_platform.defs.raw_sources import SENSOR
    from feature_platform.defs.resources import resources_for

    settings = make_embedded_settings(tmp_path).with_(repo=str(SHOP))
    views = page_views_frame()
    write_page_views(settings.home, views)
    platform = fp.FeaturePlatform(settings)
    seen = platform.observe_sources().set_index("source")
    assert seen.loc["page_views", "days_present"] == 20 and seen.loc["page_views", "rows"] == len(views)
    assert seen.loc["orders", "rows"] == len(orders_frame()) and seen.loc["orders", "last_day"] == LAST
    counts = views.groupby(views["viewed_at"].dt.date).size()
    by_day = {}
    for event in platform.instance().fetch_materializations(dg.AssetKey("raw_page_views"), limit=100).records:
        recorded = event.asset_materialization
        by_day.setdefault(recorded.partition, recorded.metadata["dagster/row_count"].value)
    assert by_day == {d.isoformat(): int(n) for d, n in counts.items()}
    # The sensor reports the same days once, then only the days whose rows changed.
    sensor = build_definitions_of(settings).get_sensor_def(SENSOR)
    with dg.build_sensor_context(instance=platform.instance(), resources=resources_for(settings)) as context:
        first = sensor(context)
        assert {e.partition for e in first.asset_events if e.asset_key == dg.AssetKey("raw_page_views")} == set(by_day)
        context.update_cursor(first.cursor)
        extra = views.iloc[:1].assign(viewed_at=pd.Timestamp("2026-03-05T08:00:00Z"))
        pd.concat([views[views["viewed_at"].dt.date == date(2026, 3, 5)], extra]).to_parquet(
            settings.home / "page_views" / "date=2026-03-05" / "part-0.parquet", index=False)
        again = sensor(context)
    assert [(e.asset_key.to_user_string(), e.partition) for e in again.asset_events] == [("raw_page_views", "2026-03-05")]


def build_definitions_of(settings):
    from feature_platform.definitions import build_definitions

    return build_definitions(settings)


def test_quiet_days_inside_a_postgres_log_are_real_even_at_the_end_of_the_range(tmp_path, orders_dsn):
    """The log runs to LAST; days with no order before that are quiet days, not missing ones, even when they end
    the range a run reads (the log's own first and last rows decide, not the range's)."""
    quiet = [LAST - timedelta(days=2), LAST - timedelta(days=1)]
    with psycopg.connect(orders_dsn) as conn:
        conn.execute("DELETE FROM shop.orders WHERE ordered_at::date = ANY(%s)", (quiet,))
    platform = fp.FeaturePlatform(make_embedded_settings(tmp_path).with_(repo=str(SHOP)))
    platform.materialize("customer_orders_30d", quiet[0], quiet[1])
    orders = orders_frame()
    orders = orders[~orders["ordered_at"].dt.date.isin(quiet)]
    assert_partitions_match(platform, "customer_orders_30d", orders, quiet[0], quiet[1])
