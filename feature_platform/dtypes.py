"""The one table of feature dtypes: what each declared dtype (`spec.DType`) is in every library the platform uses.

Pandas (computed rows and rows served to users), Pandera, Arrow and PostgreSQL (offline tables), Feast
(feature view schema, ValueType, the `Value` proto the Redis codec writes) and Spark. Library types are named,
not imported, so this stays a leaf that imports neither Feast, Spark nor pyarrow; the accessors below resolve
a name where it is used. Also the int64 range and the one test of an entity key value.
"""

from __future__ import annotations

from dataclasses import dataclass

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class DTypeInfo:
    pandas: str  # computed rows (`cast_to_spec`): strings are objects with None for nulls
    serving: str  # rows handed to users (training sets, online reads): nullable, so ints never become floats
    pandera: str  # the validation schema's column dtype
    arrow: str  # `pyarrow.<arrow>()`, the offline tables' column type
    sql: str  # PostgreSQL column type of the offline tables
    feast: str  # `feast.types.<feast>`, a feature view field's dtype (also its `str()` in the registry)
    value_type: int  # `feast.ValueType(value_type)`; also the field number of the `feast.types.Value` oneof
    proto_tag: int  # the `Value` field's tag in the Redis codec: field number << 3 | protobuf wire type
    spark: str  # `pyspark.sql.types.<spark>()`
    python: type  # the Python value a stored cell reads back as


DTYPES: dict[str, DTypeInfo] = {
    "int64": DTypeInfo("int64", "Int64", "int64", "int64", "BIGINT", "Int64", 4, 4 << 3 | 0, "LongType", int),
    "float32": DTypeInfo("float32", "float32", "float32", "float32", "REAL", "Float32", 6, 6 << 3 | 5, "FloatType",
                         float),
    "float64": DTypeInfo("float64", "float64", "float64", "float64", "DOUBLE PRECISION", "Float64", 5, 5 << 3 | 1,
                         "DoubleType", float),
    "string": DTypeInfo("object", "object", "str", "string", "TEXT", "String", 2, 2 << 3 | 2, "StringType", str),
    "bool": DTypeInfo("bool", "boolean", "bool", "bool_", "BOOLEAN", "Bool", 7, 7 << 3 | 0, "BooleanType", bool),
}

# Feast's dtype names back to the spec's (what the registry records, read back for `plan`).
BY_FEAST_NAME = {info.feast: name for name, info in DTYPES.items()}


def pandas_dtype(dtype: str) -> str:
    return DTYPES[dtype].pandas


def serving_dtype(dtype: str) -> str:
    return DTYPES[dtype].serving


def pandera_dtype(dtype: str) -> str:
    return DTYPES[dtype].pandera


def arrow_type(dtype: str):
    import pyarrow as pa

    return getattr(pa, DTYPES[dtype].arrow)()


def feast_type(dtype: str):
    import feast.types

    return getattr(feast.types, DTYPES[dtype].feast)


def value_type(dtype: str):
    from feast.value_type import ValueType

    return ValueType(DTYPES[dtype].value_type)


def spark_type(dtype: str):
    """The Spark type of a spec dtype (the offline tables' reading types)."""
    from pyspark.sql import types as T

    return getattr(T, DTYPES[dtype].spark)()


def fits_int64(n: int) -> bool:
    return INT64_MIN <= n <= INT64_MAX


def is_key_value(dtype: str, value) -> bool:
    """Whether `value` (a Python or numpy scalar) is an entity key of a view keyed by `dtype`: an integer in the
    int64 range (never a bool, a float or a string of digits, which a store would coerce into another
    entity's key) or a string."""
    if dtype != "int64":
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if not isinstance(value, int):
        import numpy as np  # numpy's bool is no np.integer

        if not isinstance(value, np.integer):
            return False
    return fits_int64(int(value))


def is_key_dtype(dtype: str, column_dtype) -> bool:
    """Whether a pandas column of dtype `column_dtype` can hold the keys of a view keyed by `dtype`."""
    import pandas as pd

    if dtype == "int64":
        return pd.api.types.is_integer_dtype(column_dtype)
    return pd.api.types.is_string_dtype(column_dtype) or pd.api.types.is_object_dtype(column_dtype)
