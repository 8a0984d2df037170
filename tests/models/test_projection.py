"""models/projection.py: the model's scaling recovered from the catalog, and PCA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segstream.models.features import feature_space
from segstream.models.naming import profiles
from segstream.models.projection import fit_scaling, pca_2d
from segstream.models.segments import Segment, Snapshot

RNG = np.random.default_rng(7)


def test_the_catalog_gives_back_the_models_mean_and_deviation() -> None:
    mean, std = np.array([1.5, -2.0, 10.0]), np.array([0.5, 3.0, 7.0])
    z = RNG.normal(size=(5, 3))
    centres = mean + std * z
    sample = RNG.normal(size=(50, 3)) * 100  # far from the model's scale: must not be used
    s = fit_scaling(sample, centres, z)
    assert s.from_model == (True, True, True)
    np.testing.assert_allclose(s.mean, mean)
    np.testing.assert_allclose(s.std, std)
    np.testing.assert_allclose(s.apply(centres), z)


def test_the_catalogs_rounding_costs_little() -> None:
    """The catalog stores z to 2 decimals and centroids (plain units) to 3."""
    space = feature_space(["monetary_180d", "recency_days", "share_paid"])
    snap = Snapshot(
        3,
        space.names,
        (4.0, 2.5, 0.3),
        (1.2, 0.8, 0.25),
        tuple(
            Segment(i, tuple(float(v) for v in RNG.normal(size=3) * 1.5), 0.25) for i in range(4)
        ),
        4,
        0,
        1000,
    )
    cat = profiles(snap, space)
    ids = sorted(cat)
    centres = np.array([[space.transform(cat[i]["centroid"])[f] for f in space.names] for i in ids])
    z = np.array([[cat[i]["z"][f] for f in space.names] for i in ids])
    s = fit_scaling(np.zeros((3, 3)), centres, z)
    assert all(s.from_model)
    np.testing.assert_allclose(s.mean, snap.mean, rtol=0.02, atol=0.02)
    np.testing.assert_allclose(s.std, snap.std, rtol=0.02)


def test_without_a_usable_catalog_the_sample_is_standardised() -> None:
    sample = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    for centres, z in [
        (None, None),
        (np.array([[2.0, 1.0]]), np.array([[1.0, 1.0]])),  # one segment: nothing to fit
        (np.array([[2.0, 1.0], [2.1, 1.0]]), np.array([[0.1, 0.0], [0.2, 0.0]])),  # too close
    ]:
        s = fit_scaling(sample, centres, z)
        assert s.from_model == (False, False)
        np.testing.assert_allclose(s.mean, [3.0, 5.0])
        np.testing.assert_allclose(s.std, [np.sqrt(8 / 3), 1.0])  # a constant column: 1
        assert np.isfinite(s.apply(sample)).all()


def test_a_fit_that_comes_out_flat_or_reversed_falls_back_per_feature() -> None:
    z = np.array([[-1.0, -1.0], [1.0, 1.0]])
    centres = np.array([[0.0, 3.0], [2.0, 1.0]])  # second feature: std would be negative
    s = fit_scaling(np.array([[0.0, 0.0], [0.0, 4.0]]), centres, z)
    assert s.from_model == (True, False)
    np.testing.assert_allclose(s.std, [1.0, 2.0])


def test_pca_finds_the_direction_of_most_spread() -> None:
    t = RNG.normal(size=400)
    x = np.column_stack([t * 5, t * 5 + RNG.normal(size=400) * 0.1, RNG.normal(size=400)])
    p = pca_2d(x)
    np.testing.assert_allclose(np.abs(p.components[0]), [2**-0.5, 2**-0.5, 0], atol=0.01)
    assert p.explained[0] > 0.95 > p.explained[1] > 0
    np.testing.assert_allclose(p.points, (x - x.mean(axis=0)) @ p.components.T)
    np.testing.assert_allclose(p.project(x), p.points)
    np.testing.assert_allclose(p.project(x.mean(axis=0)[None, :]), [[0.0, 0.0]], atol=1e-9)
    assert [f for f, _ in p.loadings(["a", "b", "c"], 0)] in (["a", "b"], ["b", "a"])


def test_pca_agrees_with_scikit_learn_up_to_sign() -> None:
    decomposition = pytest.importorskip("sklearn.decomposition")
    x = RNG.normal(size=(300, 6)) @ RNG.normal(size=(6, 6))
    ours, theirs = pca_2d(x), decomposition.PCA(n_components=2).fit(x)
    np.testing.assert_allclose(np.abs(ours.components), np.abs(theirs.components_), atol=1e-8)
    np.testing.assert_allclose(ours.explained, theirs.explained_variance_ratio_, atol=1e-10)


def test_separate_groups_stay_apart_on_the_first_axis() -> None:
    shift = np.array([4.0, 0.0, 0.0, 0.0])
    a, b = RNG.normal(size=(100, 4)) + shift, RNG.normal(size=(100, 4)) - shift
    p = pca_2d(np.vstack([a, b]))
    first = p.points[:, 0]
    assert first[:100].min() > first[100:].max() or first[:100].max() < first[100:].min()


def test_signs_are_fixed_so_the_picture_is_repeatable() -> None:
    x = RNG.normal(size=(60, 4)) * [3, 2, 1, 0.5]
    p, q = pca_2d(x), pca_2d(x[::-1].copy())
    np.testing.assert_allclose(p.components, q.components, atol=1e-9)
    for row in p.components:
        assert row[np.argmax(np.abs(row))] > 0


@pytest.mark.parametrize("shape", [(0, 3), (1, 3), (5, 1), (4, 2)])
def test_small_or_degenerate_inputs_give_finite_pictures(shape: tuple[int, int]) -> None:
    x = np.ones(shape)
    p = pca_2d(x)
    assert p.points.shape == (shape[0], 2)
    assert np.isfinite(p.points).all() and np.isfinite(p.explained).all()
    assert p.explained.sum() == 0  # no spread at all


def test_one_feature_gives_a_flat_second_axis() -> None:
    p = pca_2d(np.array([[1.0], [2.0], [4.0]]))
    assert p.explained.tolist() == [1.0, 0.0]
    assert (p.points[:, 1] == 0).all()


def test_inputs_are_not_modified() -> None:
    x = RNG.normal(size=(20, 3))
    centres, z = RNG.normal(size=(3, 3)), RNG.normal(size=(3, 3))
    copies = x.copy(), centres.copy(), z.copy()
    pca_2d(fit_scaling(x, centres, z).apply(x))
    for before, after in zip(copies, (x, centres, z), strict=True):
        np.testing.assert_array_equal(before, after)


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(2, 30), st.integers(1, 6)),
        elements=st.floats(-1e3, 1e3, allow_nan=False, width=32),
    )
)
def test_projection_never_stretches_distances(x: np.ndarray) -> None:
    """Orthonormal axes: two users are never farther apart on the map than in the data,
    and the explained shares are a decreasing split of at most the whole."""
    p = pca_2d(x)
    d_map = np.linalg.norm(p.points[:, None] - p.points[None], axis=-1)
    d_data = np.linalg.norm(x[:, None] - x[None], axis=-1)
    assert (d_map <= d_data + 1e-6 * (1 + d_data)).all()
    assert 0 <= p.explained[1] <= p.explained[0] + 1e-12
    assert p.explained.sum() <= 1 + 1e-9
