"""pandas' internals the platform uses, in one place: a DataFrame's columns as lists without building a Series per
column (the low-latency push path: a fresh one-row frame's five columns in ~15 us instead of ~90 us).

Checked against pandas 2.3.3: `DataFrame._mgr.iget_values(i)`, the i-th column's array (numpy or extension array).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def column_lists(frame: pd.DataFrame, names: list[str]) -> dict[str, list]:
    """`{name: frame[name].tolist()}` for columns `names` of `frame` (present, and named once)."""
    try:
        get = frame._mgr.iget_values
        out = {}
        for name, i in zip(names, frame.columns.get_indexer(names)):
            values = get(int(i))
            if isinstance(values, np.ndarray) and values.dtype.kind in "mM":  # numpy would give ints: the Series' way
                return {n: frame[n].tolist() for n in names}
            out[name] = values.tolist()
        return out
    except AttributeError:  # another pandas: the public way
        return {n: frame[n].tolist() for n in names}
