"""The dtype table (`feature_platform/dtypes.py`) against the libraries it names, and the entity key rule."""

from __future__ import annotations

import typing

import numpy as np
import pandas as pd
import pytest

from feature_platform import dtypes
from feature_platform.spec import DType


def test_the_table_covers_exactly_the_declarable_dtypes():
    assert set(dtypes.DTYPES) == set(typing.get_args(DType))


@pytest.mark.parametrize("dtype", typing.get_args(DType))
def test_each_library_type_exists_and_is_the_right_one(dtype):
    import feast.types
    import pandera.pandas as pa_schema
    import pyarrow as pa
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.value_type import ValueType

    info = dtypes.DTYPES[dtype]
    assert str(dtypes.feast_type(dtype)) == info.feast  # the registry records str() of it
    assert dtypes.BY_FEAST_NAME[str(dtypes.feast_type(dtype))] == dtype
    assert feast.types.from_value_type(dtypes.value_type(dtype)) == dtypes.feast_type(dtype)
    assert isinstance(dtypes.value_type(dtype), ValueType)
    # The Value oneof field whose number is the ValueType's, and its tag as protobuf writes it.
    field = Value.DESCRIPTOR.fields_by_number[info.value_type]
    sample = {"int64": 7, "float32": 1.5, "float64": 1.5, "string": "x", "bool": True}[dtype]
    assert Value(**{field.name: sample}).SerializeToString()[0] == info.proto_tag
    assert pa.types.is_primitive(dtypes.arrow_type(dtype)) or pa.types.is_string(dtypes.arrow_type(dtype))
    assert dtype == "string" or pa.from_numpy_dtype(np.dtype(info.pandas)) == dtypes.arrow_type(dtype)
    pa_schema.Column(dtypes.pandera_dtype(dtype))  # a dtype Pandera knows
    assert pd.Series([sample], dtype=dtypes.serving_dtype(dtype)).tolist() == [sample]
    assert isinstance(sample, info.python)


def test_key_values_are_integers_in_the_int64_range_or_strings():
    ok = [0, -(2**63), 2**63 - 1, np.int64(5), np.uint8(3)]
    bad = [True, np.bool_(True), 1.0, np.float64(2), "1", 2**63, -(2**63) - 1, None]
    assert all(dtypes.is_key_value("int64", v) for v in ok)
    assert not any(dtypes.is_key_value("int64", v) for v in bad)
    assert dtypes.is_key_value("string", "u1") and not dtypes.is_key_value("string", 1)
