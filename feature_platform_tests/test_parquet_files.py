"""Parquet files go through Arrow's own file I/O (feature_platform/util/parquet_files.py): the package never hands
pyarrow a Python file object (which `pandas.read_parquet`/`to_parquet` do with a local path), and the frames are
the ones pandas gives."""

from __future__ import annotations

import ast
import errno
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from feature_platform.util.parquet_files import read_frame, write_frame

PACKAGE = Path(__file__).resolve().parents[1] / "feature_platform"
# Code written into a user's new repository (`feature-platform init`): theirs, not the platform's.
USERS_CODE = ("cli/repo_template.py",)


def test_the_package_reads_and_writes_parquet_only_by_path():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), name)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("read_parquet", "to_parquet") and name not in USERS_CODE):
                found.append(f"{name}:{node.lineno} .{node.func.attr}(...)")
    assert found == [], "use feature_platform.util.parquet_files instead:\n" + "\n".join(found)


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": pd.array([1, 2**60 + 1, None], dtype="Int64"),
        "plain": np.array([1, 2, 3], dtype="int32"),
        "score": [0.5, np.nan, -1.25],
        "model": ["a", None, "ç"],
        "kind": pd.Categorical(["x", "y", "x"]),
        "event_timestamp": pd.to_datetime(["2026-01-01T00:00:00.000001", "2026-01-02T00:00:00", None], utc=True, format="ISO8601"),
        "flag": [True, False, None],
    }, index=[7, 8, 9])


def test_the_frames_are_the_ones_pandas_reads_and_writes(tmp_path):
    frame = _frame()
    ours, theirs = tmp_path / "ours.parquet", tmp_path / "theirs.parquet"
    write_frame(frame, ours)
    frame.to_parquet(theirs, index=False)
    for path in (ours, theirs):
        pdt.assert_frame_equal(read_frame(path), pd.read_parquet(path))
    pdt.assert_frame_equal(read_frame(ours), read_frame(theirs))
    assert list(read_frame(ours).index) == [0, 1, 2]  # the index is not written, as with index=False


def test_a_directory_of_files_reads_as_pandas_reads_it(tmp_path):
    (tmp_path / "d").mkdir()
    write_frame(_frame().iloc[:2], tmp_path / "d" / "a.parquet")
    write_frame(_frame().iloc[2:], tmp_path / "d" / "b.parquet")
    pdt.assert_frame_equal(read_frame(tmp_path / "d"), pd.read_parquet(tmp_path / "d"))
    assert len(read_frame(tmp_path / "d")) == 3


def test_a_file_that_cannot_be_opened_raises_the_operating_systems_error(tmp_path):
    with pytest.raises(FileNotFoundError) as missing:
        read_frame(tmp_path / "none.parquet")
    assert missing.value.errno == errno.ENOENT and missing.value.strerror
