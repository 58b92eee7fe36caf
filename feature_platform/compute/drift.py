"""Population stability index (PSI) between two samples of one feature: a drift signal per partition."""

from __future__ import annotations

import numpy as np
import pandas as pd

BINS = 10
EPSILON = 1e-4  # keeps empty bins from making the index infinite


def psi(expected: pd.Series, actual: pd.Series, bins: int = BINS) -> float | None:
    """PSI of `actual` against `expected`: quantile bins of `expected` for numbers, categories otherwise.

    Rules of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 large shift. None when either is empty.
    """
    expected, actual = expected.dropna(), actual.dropna()
    if expected.empty or actual.empty:
        return None
    if pd.api.types.is_numeric_dtype(expected) and pd.api.types.is_numeric_dtype(actual):
        edges = np.unique(np.quantile(expected.astype(float), np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        edges[0], edges[-1] = -np.inf, np.inf
        e = np.histogram(expected.astype(float), edges)[0]
        a = np.histogram(actual.astype(float), edges)[0]
    else:
        categories = sorted(set(expected.astype(str)) | set(actual.astype(str)))
        e = expected.astype(str).value_counts().reindex(categories, fill_value=0).to_numpy()
        a = actual.astype(str).value_counts().reindex(categories, fill_value=0).to_numpy()
    e = np.maximum(e / e.sum(), EPSILON)
    a = np.maximum(a / a.sum(), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))
