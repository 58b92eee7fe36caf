"""Population stability index (PSI) between two samples of one feature: a drift signal per partition."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

BINS = 10
EPSILON = 1e-4  # keeps empty bins from making the index infinite


class Distribution:
    """One feature's non-null values in one partition, prepared for PSI on either side of a comparison.

    A range run compares each partition with the one a week earlier, so each is the actual side once and the
    expected side once: its sorted values (numbers) or its category counts (objects) are computed once for both.
    The values are copied, so a distribution does not keep the frame it came from alive; `keep_as_baseline`
    drops the sorted copy once only the expected side is left.
    """

    def __init__(self, values: pd.Series, ordered: np.ndarray | None = None):
        """`ordered`: the values' non-null ones already sorted (`partition_stats.SortedValues`), if the caller has them."""
        # Objects keep their nulls: factorizing drops them with its own null test (a second one costs as much).
        self.dtype = values.dtype
        self._values = values.copy() if values.dtype == object else values.dropna().copy()
        self._edges: dict[int, np.ndarray] = {}
        self._own: dict[int, np.ndarray] = {}
        if ordered is not None and self.numeric:  # as floats, as `sorted` makes them (an order-keeping conversion)
            self.__dict__["sorted"] = ordered.astype(float)

    @cached_property
    def values(self) -> pd.Series:
        """The non-null values."""
        if self._values is None:
            raise ValueError(f"a distribution kept as a baseline holds its counts (numbers: in {sorted(self._own)} bins), "
                             "not its values (`keep_as_baseline`): compare it in those bins, or prepare a fresh one")
        return self._values.dropna() if self.dtype == object else self._values

    @property
    def empty(self) -> bool:
        if self._values is None:
            return self._empty
        if self.dtype == object:
            return not self.categories[1].any()
        return self._values.empty

    @cached_property
    def numeric(self) -> bool:
        return pd.api.types.is_numeric_dtype(self.dtype)

    @cached_property
    def sorted(self) -> np.ndarray:
        return np.sort(self.values.to_numpy(dtype=float))

    def inner_edges(self, bins: int) -> np.ndarray:
        """The quantile edges of its values as the expected side (bins `[e_i, e_i+1)`, the outer ones open)."""
        if bins not in self._edges:
            # The quantiles of the sorted values are those of the values (the same order statistics), found faster.
            edges = np.unique(sorted_quantiles(self.sorted, np.linspace(0, 1, bins + 1)))
            if len(edges) < 2:
                edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
            self._edges[bins] = edges[1:-1]  # as np.histogram counts them, with the outer edges at -inf/+inf
        return self._edges[bins]

    def own_counts(self, bins: int) -> np.ndarray:
        """Its counts in its own quantile bins: the expected side's."""
        if bins not in self._own:
            self._own[bins] = self.bin_counts(self.inner_edges(bins))
        return self._own[bins]

    def keep_as_baseline(self, bins: int = BINS) -> None:
        """Keep only what comparing a later partition with it in `bins` bins needs: for numbers, its bin edges and
        its counts in them; for objects, its category counts. Its values and their sorted copy are dropped, so a
        range run's week of baselines holds a few counts per feature, not a week of values (the year backfill's
        peak RSS: ~60 MB less). It can then be the expected side in `bins` bins only (else ValueError). Values of
        any other dtype are kept: they are compared as text (`distribution_psi`)."""
        if self.numeric:
            if not self.empty:
                self.own_counts(bins)
        elif self.dtype == object:
            self.categories  # noqa: B018 - counted now, from the values about to be dropped
        self.__dict__.pop("sorted", None)
        if self.numeric or self.dtype == object:
            self._empty = self.empty
            self._values = None
            self.__dict__.pop("values", None)

    def bin_counts(self, inner: np.ndarray) -> np.ndarray:
        """How many values fall in each bin `[inner[i-1], inner[i])` (the outer bins open), i.e. `searchsorted(inner,
        values, side="right")` counted: from the sorted values, one binary search per edge."""
        at_least = len(self.sorted) - np.searchsorted(self.sorted, inner, side="left")
        return -np.diff(np.concatenate(([len(self.sorted)], at_least.astype(np.int64), [0])))

    @cached_property
    def categories(self) -> tuple[pd.Index, np.ndarray]:
        """Its distinct values in order of first appearance, and their counts (object values only)."""
        codes, uniques = pd.factorize(self._values.to_numpy(dtype=object))  # nulls: code -1
        return pd.Index(uniques, dtype=object), np.bincount(codes[codes >= 0], minlength=len(uniques))


def sorted_quantiles(ordered: np.ndarray, q: np.ndarray) -> np.ndarray:
    """`np.quantile(ordered, q)` (its default, linear method) of values already sorted, without NaN: the order
    statistics are read where they are, not found again by a partition of every value (~0.2 ms a feature of a day's
    ~65k rows, twice a partition); interpolated as numpy does, so the results are numpy's to the bit."""
    at = (len(ordered) - 1) * q
    below = np.floor(at)
    above = below + 1
    last = at >= len(ordered) - 1  # numpy takes the last value on both sides (index -1), and measures gamma from -1
    below[last] = above[last] = -1
    gamma = at - below
    a, b = ordered[below.astype(np.intp)], ordered[above.astype(np.intp)]
    diff = b - a
    out = a + diff * gamma
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), out)


def psi(expected: pd.Series, actual: pd.Series, bins: int = BINS) -> float | None:
    """PSI of `actual` against `expected`: quantile bins of `expected` for numbers, categories otherwise.

    Rules of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 large shift. None when either is empty.
    """
    return distribution_psi(Distribution(expected), Distribution(actual), bins)


def distribution_psi(expected: Distribution, actual: Distribution, bins: int = BINS) -> float | None:
    """`psi` of two prepared distributions."""
    if expected.empty or actual.empty:
        return None
    if expected.numeric and actual.numeric:
        e, a = expected.own_counts(bins), actual.bin_counts(expected.inner_edges(bins))
    elif expected.dtype == object and actual.dtype == object:
        e, a = _category_counts(expected, actual)
    else:
        both = pd.concat([expected.values, actual.values], ignore_index=True)
        codes, _ = pd.factorize(both if both.dtype == object else both.astype(str))
        n = int(codes.max()) + 1
        e = np.bincount(codes[: len(expected.values)], minlength=n)
        a = np.bincount(codes[len(expected.values):], minlength=n)
    e = np.maximum(e / e.sum(), EPSILON)
    a = np.maximum(a / a.sum(), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def _category_counts(expected: Distribution, actual: Distribution) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' counts per category, the categories in order of first appearance in expected then actual (as
    factorizing the two concatenated would number them, so the index sums its terms in the same order)."""
    known, e_counts = expected.categories
    seen, a_counts = actual.categories
    at = known.get_indexer(seen)
    new = at < 0
    at[new] = len(known) + np.arange(int(new.sum()))
    n = len(known) + int(new.sum())
    e = np.zeros(n, dtype=np.int64)
    e[: len(known)] = e_counts
    a = np.zeros(n, dtype=np.int64)
    a[at] = a_counts
    return e, a
