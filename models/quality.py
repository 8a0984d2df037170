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


def silhouette(points: Sequence[Sequence[float]], labels: Sequence[Hashable]) -> float | None:
    """Mean silhouette (Rousseeuw): for each point, how much nearer it is to its own
    cluster than to the next one, from -1 (wrong cluster) to 1 (well apart).

    ``None`` when it is undefined (fewer than two clusters). Quadratic in the number
    of points: callers pass a bounded sample. A point alone in its cluster scores 0.

    >>> silhouette([(0, 0), (0, 1), (10, 0), (10, 1)], [0, 0, 1, 1]) > 0.9
    True
    >>> silhouette([(0, 0), (1, 0)], [0, 0]) is None
    True
    """
    import numpy as np

    if len(points) != len(labels):
        raise ValueError("points and labels must have the same length")
    ids = sorted(set(labels), key=str)
    if len(ids) < 2:
        return None
    x = np.asarray(points, dtype=float)
    lab = np.array([ids.index(v) for v in labels])
    sq = (x * x).sum(axis=1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))
    member = np.eye(len(ids), dtype=bool)[lab]  # n x k
    sizes = member.sum(axis=0)
    sums = d @ member  # n x k: total distance to each cluster
    own = sizes[lab] - 1
    a = np.where(own > 0, sums[np.arange(len(x)), lab] / np.maximum(own, 1), 0.0)
    mean_other = sums / np.maximum(sizes, 1)
    mean_other[np.arange(len(x)), lab] = np.inf
    b = mean_other.min(axis=1)
    s = np.where(own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())
