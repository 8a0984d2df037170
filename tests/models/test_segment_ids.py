"""models/segment_ids.py: stable public ids by optimal matching."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.models.segment_ids import match_ids

PREV = {0: [0.0, 0.0], 1: [10.0, 0.0], 2: [0.0, 10.0]}


def test_ids_survive_a_permutation_of_labels():
    current = {"x": [0.2, 9.9], "y": [0.1, -0.1], "z": [9.8, 0.3]}
    mapping, next_id = match_ids(PREV, current, next_id=3)
    assert mapping == {"x": 2, "y": 0, "z": 1}
    assert next_id == 3


def test_integer_labels_are_independent_of_ids():
    current = {0: [10.0, 0.0], 1: [0.0, 10.0], 2: [0.0, 0.0]}
    mapping, _ = match_ids(PREV, current, next_id=3)
    assert mapping == {0: 1, 1: 2, 2: 0}


def test_far_centroids_get_fresh_ids():
    current = {"a": [0.1, 0.0], "b": [50.0, 50.0], "c": [10.0, 0.5]}
    mapping, next_id = match_ids(PREV, current, next_id=3, max_distance=3.0)
    assert mapping["a"] == 0 and mapping["c"] == 1
    assert mapping["b"] == 3  # nearest free previous (2) is too far
    assert next_id == 4


def test_all_far_means_all_new_and_previous_retired():
    current = {"a": [100.0, 0.0], "b": [0.0, 100.0]}
    mapping, next_id = match_ids(PREV, current, next_id=7, max_distance=1.0)
    assert sorted(mapping.values()) == [7, 8]
    assert next_id == 9


def test_without_previous_ids_are_handed_out_in_label_order():
    mapping, next_id = match_ids({}, {"b": [1.0], "a": [2.0]}, next_id=0)
    assert mapping == {"a": 0, "b": 1}
    assert next_id == 2


def test_fewer_current_segments_retire_the_unmatched():
    mapping, next_id = match_ids(PREV, {"only": [9.0, 1.0]}, next_id=3)
    assert mapping == {"only": 1}
    assert next_id == 3


def test_more_current_segments_than_previous():
    current = {"a": [0.0, 0.0], "b": [10.0, 0.0], "c": [0.0, 10.0], "d": [5.0, 5.0]}
    mapping, next_id = match_ids(PREV, current, next_id=3)
    assert mapping == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert next_id == 4


def test_matching_is_globally_optimal_not_greedy():
    # greedy on "p" would take id 0 (distance 1) and leave "q" with distance 9
    prev = {0: [0.0], 1: [10.0]}
    current = {"p": [1.0], "q": [-1.0]}
    mapping, _ = match_ids(prev, current, next_id=2)
    total = sum(abs(current[k][0] - prev[v][0]) for k, v in mapping.items())
    assert total == min(1 + 11, 9 + 1)
    assert mapping == {"p": 1, "q": 0}


def test_empty_current():
    assert match_ids(PREV, {}, next_id=3) == ({}, 3)


@settings(database=None, max_examples=50, deadline=None)
@given(k=st.integers(1, 8), seed=st.integers(0, 10**6), noise=st.floats(0, 0.4))
def test_random_permutations_are_recovered(k, seed, noise):
    rng = random.Random(seed)
    # well separated centroids on a grid, spacing 5
    cells = rng.sample([(i, j) for i in range(6) for j in range(6)], k)
    prev = {pid: [5.0 * i, 5.0 * j] for pid, (i, j) in enumerate(cells)}
    labels = list(range(k))
    rng.shuffle(labels)
    current = {
        f"L{labels[pid]}": [c + rng.uniform(-noise, noise) for c in cen]
        for pid, cen in prev.items()
    }
    mapping, next_id = match_ids(prev, current, next_id=k, max_distance=1.0)
    assert next_id == k
    for pid in prev:
        assert mapping[f"L{labels[pid]}"] == pid
    assert all(math.dist(current[lab], prev[pid]) <= 1.0 for lab, pid in mapping.items())
