"""A declared source's row rules run through Pandera (`source_schema`): every rule of the spec is a check of
the schema, and a read refuses exactly the (column, rule) pairs a plain-Python oracle finds in the rows."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_platform.errors import SourceDataError
from feature_platform.sources.parquet import ParquetSource
from feature_platform.sources.schema import source_rules, source_schema
from feature_platform.spec import Field, SourceSpec

ORDERS = SourceSpec(
    name="orders", path="orders.parquet", timestamp_column="ordered_at", row_id=("order_id",),
    columns=(
        Field("order_id", "string"),
        Field("customer", "string", isin=("a", "b")),
        Field("amount", "float64", ge=0, le=1000),
        Field("discount", "float64", ge=-5, nullable=True),
        Field("items", "int64", ge=1, nullable=True),
    ),
)
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
DAY = (T0, T0 + timedelta(days=1))


def test_every_declared_rule_is_a_check_of_the_pandera_schema():
    schema = source_schema(ORDERS)
    assert isinstance(schema, pandera.DataFrameSchema)
    assert list(schema.columns) == [*ORDERS.column_names, "ordered_at"]
    declared = {(name, what) for name, what, _ in source_rules(ORDERS)}
    in_schema = {(name, "null") for name, column in schema.columns.items() if not column.nullable}
    in_schema |= {(name, check.error) for name, column in schema.columns.items() for check in column.checks}
    assert in_schema == declared
    assert ("discount", "null") not in declared and ("discount", "NaN or infinite") in declared


def _write(tmp_path, rows: dict) -> ParquetSource:
    types = {"order_id": pa.string(), "customer": pa.string(), "amount": pa.float64(), "discount": pa.float64(),
             "items": pa.int64(), "ordered_at": pa.timestamp("us", tz="UTC")}
    pq.write_table(pa.table({k: pa.array(v, types[k]) for k, v in rows.items()}), tmp_path / "orders.parquet")
    return ParquetSource(ORDERS, str(tmp_path / "orders.parquet"))


def test_a_null_float_is_allowed_where_declared_nullable_but_a_nan_never(tmp_path):
    rows = {"order_id": ["o1", "o2"], "customer": ["a", "b"], "amount": [1.0, 2.0], "discount": [None, 0.5],
            "items": [None, 3], "ordered_at": [T0, T0]}
    frame = _write(tmp_path, rows).read(*DAY)
    assert math.isnan(frame["discount"][0]) and frame["discount"][1] == 0.5
    assert str(frame["discount"].dtype) == "float64" and str(frame["amount"].dtype) == "float64"
    rows["discount"] = [float("nan"), 0.5]
    with pytest.raises(SourceDataError, match=r"column 'discount': 1 NaN or infinite value\(s\), first rows: "
                                               r"\(order_id='o1', ordered_at=.*, discount=nan\)"):
        _write(tmp_path, rows).read(*DAY)


def _oracle(rows: dict) -> set[tuple[str, str]]:
    if None in rows["ordered_at"]:  # refused from the file's statistics, before its rows are read
        return {("ordered_at", "null")}
    broken = set()
    for name, what, rule in source_rules(ORDERS):
        for value in rows[name]:
            if what == "null":
                bad = value is None
            elif value is None:
                bad = False
            elif what == "NaN or infinite":
                bad = not math.isfinite(value)
            elif rule[0] == "ge":
                bad = value < rule[1]
            elif rule[0] == "le":
                bad = value > rule[1]
            else:
                bad = value not in rule[1]
            if bad:
                broken.add((name, what))
                break
    return broken


floats = st.one_of(st.none(), st.floats(-10, 1010), st.sampled_from([math.nan, math.inf, -math.inf]))
rows_ = st.integers(1, 6).flatmap(lambda n: st.fixed_dictionaries({
    "order_id": st.lists(st.one_of(st.none(), st.text("xyz", min_size=1, max_size=3)), min_size=n, max_size=n),
    "customer": st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), min_size=n, max_size=n),
    "amount": st.lists(floats, min_size=n, max_size=n),
    "discount": st.lists(floats, min_size=n, max_size=n),
    "items": st.lists(st.one_of(st.none(), st.integers(-2, 3)), min_size=n, max_size=n),
    "ordered_at": st.lists(st.one_of(st.none(), st.just(T0)), min_size=n, max_size=n),
}))


@settings(max_examples=120, deadline=None)
@given(rows=rows_)
def test_a_read_refuses_exactly_the_rules_the_rows_break(tmp_path_factory, rows):
    source = _write(tmp_path_factory.mktemp("orders"), rows)
    expected = _oracle(rows)
    if not expected:
        assert len(source.read(*DAY)) == len(rows["order_id"])
        return
    with pytest.raises(SourceDataError) as refused:
        source.read(*DAY)
    reported = set(re.findall(r"column '(\w+)': \d+ (.+?) value\(s\)", str(refused.value)))
    assert reported == expected
