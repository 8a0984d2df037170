"""Escaping a k-means local optimum: move one centroid where the model fits worst.

Online k-means settles wherever its first centroids led it. A common bad end on
real populations: one group is split between two centroids while two other
groups share one. Every centroid is live, so the dead-centroid re-seed never
fires, and more learning only deepens the fit.

:func:`best_swap` looks for the single move that fixes this: take one centroid
away and put it on a user the others serve badly (candidates are drawn the
k-means++ way, in proportion to their squared distance). Both the current
centroids and the best swap are then polished by a few Lloyd iterations on the
same population. The move is kept only if it beats polishing alone by
``min_gain`` (a fraction); the result, moved or only polished, is proposed only
if it lowers the model's within-segment sum of squares by ``min_gain`` or more.
Online k-means' centroids trail the groups they follow (each learns from its
last few users), and polishing alone can be what a merged pair of groups needs.
A model that already fits is left alone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Swap:
    index: int | None  # which centroid (position in the given list) moved; None: none did
    centers: tuple[tuple[float, ...], ...]  # every centroid after the move, polished
    before: float  # sum of squares of the centroids as given
    after: float  # ... and of ``centers``


def _sq_dist(points: Array, centers: Array) -> Array:
    """Squared distances, (n points, k centers): |p|^2 + |c|^2 - 2 p.c, one matrix product."""
    d2 = (points**2).sum(axis=1)[:, None] + (centers**2).sum(axis=1)[None, :]
    d2 -= 2.0 * points @ centers.T
    return np.asarray(np.maximum(d2, 0.0))


def inertia(points: Array, centers: Array) -> float:
    """The sum of each point's squared distance to its nearest centroid."""
    return float(_sq_dist(points, centers).min(axis=1).sum())


def lloyd(points: Array, centers: Array, iterations: int) -> Array:
    """A few batch k-means steps; a centroid that wins no point stays where it is."""
    c = centers.copy()
    for _ in range(iterations):
        nearest = _sq_dist(points, c).argmin(axis=1)
        for j in range(len(c)):
            mine = points[nearest == j]
            if len(mine):
                c[j] = mine.mean(axis=0)
    return c


def best_swap(
    points: Sequence[Sequence[float]],
    centers: Sequence[Sequence[float]],
    rng: random.Random,
    *,
    candidates: int = 32,
    iterations: int = 10,
    min_gain: float = 0.1,
) -> Swap | None:
    """Better centroids than ``centers``, if they lower the sum of squares by ``min_gain``:
    the given ones polished, or the best one-centroid move polished, whichever fits
    best. ``index`` says which centroid moved (None: polishing alone was enough)."""
    z = np.asarray(points, dtype=np.float64)
    c = np.asarray(centers, dtype=np.float64)
    k = len(c)
    if k < 2 or len(z) <= k:
        return None
    d2 = _sq_dist(z, c)
    best = d2.min(axis=1)
    total = float(best.sum())
    if total <= 0.0:
        return None
    picks = sorted(set(rng.choices(range(len(z)), weights=best.tolist(), k=candidates)))
    to_cand = _sq_dist(z, z[picks])  # (n, candidates)
    order = np.sort(d2, axis=1)
    nearest = d2.argmin(axis=1)
    choice: tuple[float, int, int] | None = None
    for j in range(k):
        # each point's best distance once centroid j is gone
        without = np.where(nearest == j, order[:, 1], best)
        sse = np.minimum(without[:, None], to_cand).sum(axis=0)
        m = int(sse.argmin())
        if choice is None or sse[m] < choice[0]:
            choice = (float(sse[m]), j, picks[m])
    assert choice is not None
    _, j, p = choice
    moved = c.copy()
    moved[j] = z[p]
    polished_now = lloyd(z, c, iterations)
    polished_moved = lloyd(z, moved, iterations)
    now, after = inertia(z, polished_now), inertia(z, polished_moved)
    # the move only when it beats polishing alone by min_gain too: no swap for noise
    index: int | None = j if after <= (1.0 - min_gain) * now else None
    if index is None:
        polished_moved, after = polished_now, now
    if after > (1.0 - min_gain) * total:
        return None
    return Swap(index, tuple(tuple(float(v) for v in row) for row in polished_moved), total, after)
