"""Clustering quality measures (no scikit-learn needed at run time).

>>> adjusted_rand_index(["a", "a", "b", "b"], [1, 1, 0, 0])
1.0
>>> round(adjusted_rand_index(["a", "a", "b", "b"], [1, 0, 1, 0]), 3)
-0.5
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from math import comb


def adjusted_rand_index(truth: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Adjusted Rand index (Hubert and Arabie): 1 for identical partitions, ~0 for chance."""
    if len(truth) != len(labels):
        raise ValueError("truth and labels must have the same length")
    n = len(truth)
    if n < 2:
        return 1.0
    pairs = Counter(zip(truth, labels, strict=True))
    sum_cells = sum(comb(c, 2) for c in pairs.values())
    sum_rows = sum(comb(c, 2) for c in Counter(truth).values())
    sum_cols = sum(comb(c, 2) for c in Counter(labels).values())
    expected = sum_rows * sum_cols / comb(n, 2)
    maximum = (sum_rows + sum_cols) / 2
    if maximum == expected:
        return 1.0
    return (sum_cells - expected) / (maximum - expected)
