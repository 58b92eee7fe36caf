"""Population stability index (PSI) between two samples of one feature: a drift signal per partition."""

from __future__ import annotations

import numpy as np
import pandas as pd

BINS = 10
EPSILON = 1e-4  # keeps empty bins from making the index infinite


def _bin_counts(values: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """How many `values` fall in each bin `[inner[i-1], inner[i])` (outer bins open): `searchsorted(inner, values,
    side="right")` counted, from one comparison per edge (at most 9: faster than a binary search per value)."""
    at_least = np.array([np.count_nonzero(values >= edge) for edge in inner], dtype=np.int64)
    return -np.diff(np.concatenate(([len(values)], at_least, [0])))


def psi(expected: pd.Series, actual: pd.Series, bins: int = BINS) -> float | None:
    """PSI of `actual` against `expected`: quantile bins of `expected` for numbers, categories otherwise.

    Rules of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 large shift. None when either is empty.
    """
    expected, actual = expected.dropna(), actual.dropna()
    if expected.empty or actual.empty:
        return None
    if pd.api.types.is_numeric_dtype(expected) and pd.api.types.is_numeric_dtype(actual):
        x, y = expected.to_numpy(dtype=float), actual.to_numpy(dtype=float)
        edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        inner = edges[1:-1]  # bins [e_i, e_i+1) with the outer edges at -inf/+inf, as np.histogram counts them
        e, a = _bin_counts(x, inner), _bin_counts(y, inner)
    else:
        both = pd.concat([expected, actual], ignore_index=True)
        codes, _ = pd.factorize(both if both.dtype == object else both.astype(str))
        n = int(codes.max()) + 1
        e = np.bincount(codes[: len(expected)], minlength=n)
        a = np.bincount(codes[len(expected):], minlength=n)
    e = np.maximum(e / e.sum(), EPSILON)
    a = np.maximum(a / a.sum(), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))
