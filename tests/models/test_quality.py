"""models/quality.py: the adjusted Rand index, checked against scikit-learn."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

from segstream.models.quality import adjusted_rand_index

# equal-length label pairs: a few labels so that partitions share structure
label_pairs = st.integers(min_value=0, max_value=60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 5), min_size=n, max_size=n),
        st.lists(st.integers(0, 7), min_size=n, max_size=n),
    )
)


@settings(database=None, max_examples=200, deadline=None)
@given(label_pairs)
def test_equals_sklearn_adjusted_rand_score(pair):
    truth, labels = pair
    assert adjusted_rand_index(truth, labels) == pytest.approx(
        adjusted_rand_score(truth, labels), abs=1e-9
    )


@settings(database=None, max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=50), st.randoms(use_true_random=False))
def test_equals_sklearn_on_noisy_copies_of_a_partition(truth, rnd):
    # mostly agreeing partitions exercise the high end of the scale
    labels = [t if rnd.random() < 0.8 else rnd.randrange(5) for t in truth]
    assert adjusted_rand_index(truth, labels) == pytest.approx(
        adjusted_rand_score(truth, labels), abs=1e-9
    )


@settings(database=None, max_examples=100, deadline=None)
@given(label_pairs, st.permutations(range(8)), st.permutations(range(8)))
def test_invariant_under_relabelling_either_side(pair, perm_a, perm_b):
    truth, labels = pair
    base = adjusted_rand_index(truth, labels)
    renamed_truth = [f"t{perm_a[t]}" for t in truth]
    renamed_labels = [perm_b[x] for x in labels]
    assert adjusted_rand_index(renamed_truth, renamed_labels) == pytest.approx(base, abs=1e-12)


@settings(database=None, max_examples=100, deadline=None)
@given(label_pairs)
def test_symmetric(pair):
    truth, labels = pair
    assert adjusted_rand_index(truth, labels) == pytest.approx(
        adjusted_rand_index(labels, truth), abs=1e-12
    )


@settings(database=None, max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=0, max_size=40), st.permutations(range(7)))
def test_identical_partitions_score_one(truth, perm):
    assert adjusted_rand_index(truth, [perm[t] for t in truth]) == pytest.approx(1.0)


def test_documented_values():
    assert adjusted_rand_index(["a", "a", "b", "b"], [1, 1, 0, 0]) == 1.0
    assert adjusted_rand_index(["a", "a", "b", "b"], [1, 0, 1, 0]) == pytest.approx(-0.5)


def test_independent_partitions_score_near_zero():
    # a 2x2 design where labels carry no information about truth
    truth = [0, 0, 1, 1] * 50
    labels = [0, 1, 0, 1] * 50
    assert abs(adjusted_rand_index(truth, labels)) < 0.02


@pytest.mark.parametrize(
    ("truth", "labels"),
    [([1, 2, 3], [1, 2]), ([], [0]), ([0], [])],
)
def test_length_mismatch_raises_value_error(truth, labels):
    with pytest.raises(ValueError, match="same length"):
        adjusted_rand_index(truth, labels)
