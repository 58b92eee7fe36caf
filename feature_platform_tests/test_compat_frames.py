"""The pandas and Pandera adapters behind large frames (compat/): a frame built from blocks without copies, and
validation that leaves no validated frame in a reference cycle."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from feature_platform.compat.pandas_internals import frame_from_blocks
from feature_platform.compat.pandera_internals import validate

SCHEMA = pa.DataFrameSchema({"a": pa.Column(int, pa.Check.ge(0)), "b": pa.Column(float, nullable=True)})


@pytest.fixture
def no_collection():
    """Nothing is freed by the garbage collector during the test: what is freed is freed by its last reference."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.mark.parametrize("inplace", [False, True])
def test_the_validated_frame_is_freed_without_a_collection(no_collection, inplace):
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, None]})
    validated = []
    real = pa.DataFrameSchema.validate

    def spy(self, obj, *args, **kwargs):
        out = real(self, obj, *args, **kwargs)
        validated.append(weakref.ref(out))
        return out

    pa.DataFrameSchema.validate = spy
    try:
        validate(SCHEMA, frame, inplace=inplace)
    finally:
        pa.DataFrameSchema.validate = real
    if inplace:
        assert validated[0]() is frame and "pandera" not in vars(frame)
    else:
        assert validated[0]() is None  # Pandera's copy: freed on return
    assert frame.equals(pd.DataFrame({"a": [1, 2], "b": [0.5, None]}))


def test_a_failing_frame_raises_pandera_s_errors():
    frame = pd.DataFrame({"a": [1, -2], "b": [0.5, None]})
    with pytest.raises(pa.errors.SchemaErrors) as got:
        validate(SCHEMA, frame)
    with pytest.raises(pa.errors.SchemaErrors) as want:
        SCHEMA.validate(frame, lazy=True)
    pd.testing.assert_frame_equal(got.value.failure_cases, want.value.failure_cases)
    assert "pandera" not in vars(frame)


def test_a_frame_from_blocks_equals_the_public_constructor_and_copies_nothing():
    ints = np.arange(12, dtype=np.int64).reshape(3, 4)
    labels = np.array(["x", None, "y", "x"], dtype=object)
    nullable = pd.array([1, None, 3, 4], dtype="Int64")
    times = pd.DatetimeIndex(["2026-01-01"] * 4, tz="UTC").as_unit("us").array
    names = ["k", "i1", "s", "i2", "n", "t", "i3"]
    frame = frame_from_blocks(names, [(ints, [0, 1, 3]), (labels, [2]), (nullable, [4]), (times, [5]),
                                      (np.ones(4, dtype=np.float32), [6])], 4)
    want = pd.DataFrame({"k": ints[0], "i1": ints[1], "s": labels, "i2": ints[2], "n": nullable, "t": times,
                         "i3": np.ones(4, dtype=np.float32)})
    pd.testing.assert_frame_equal(frame, want, check_exact=True)
    assert np.shares_memory(frame["i2"].to_numpy(), ints)
    assert frame._mgr.is_consolidated()  # noqa: SLF001 - what the adapter is for: a copy needs no consolidation


def test_without_pandas_block_api_the_frame_is_the_same(monkeypatch):
    monkeypatch.delattr("pandas.core.internals.api.make_block")
    ints = np.arange(8, dtype=np.int64).reshape(2, 4)
    frame = frame_from_blocks(["a", "s", "b"], [(ints, [0, 2]), (np.array(list("wxyz"), dtype=object), [1])], 4)
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"a": ints[0], "s": list("wxyz"), "b": ints[1]}))
