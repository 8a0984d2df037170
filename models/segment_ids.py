"""Stable public segment ids across model versions.

A clusterer's internal labels are arbitrary and may permute whenever it learns.
Each new set of centroids is matched to the previous published ones by optimal
assignment (Hungarian algorithm on Euclidean distance); matches further apart
than ``max_distance`` are treated as new segments and get fresh ids, and
previous segments left unmatched are retired.

>>> match_ids({0: [0.0, 0.0], 1: [5.0, 5.0]}, {"a": [5.1, 4.9], "b": [0.2, 0.0]}, next_id=2)
({'a': 1, 'b': 0}, 2)
>>> match_ids({0: [0.0, 0.0]}, {"a": [0.1, 0.0], "b": [9.0, 9.0]}, next_id=1)
({'a': 0, 'b': 1}, 2)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

from scipy.optimize import linear_sum_assignment


def match_ids(
    previous: Mapping[int, Sequence[float]],
    current: Mapping[Hashable, Sequence[float]],
    *,
    next_id: int,
    max_distance: float = math.inf,
) -> tuple[dict[Hashable, int], int]:
    """Map each current label to a public id; returns the mapping and the next free id.

    Both sides must be given in the same coordinate space.
    """
    prev_ids = sorted(previous)
    labels = sorted(current, key=str)
    mapping: dict[Hashable, int] = {}
    if prev_ids and labels:
        cost = [[math.dist(current[label], previous[pid]) for pid in prev_ids] for label in labels]
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            if cost[r][c] <= max_distance:
                mapping[labels[r]] = prev_ids[c]
    for label in labels:
        if label not in mapping:
            mapping[label] = next_id
            next_id += 1
    return mapping, next_id
