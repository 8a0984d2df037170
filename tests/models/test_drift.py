"""Drift signals: PSI on reference bins, confirmation, references that move on a drift."""

from __future__ import annotations

import random

import pytest

from segstream.models.drift import Bins, Confirmer, DriftMonitor, drift, psi

FEATURES = ("spend", "clicks")


def population(rng: random.Random, n: int = 1000, clickers: float = 0.2) -> list[dict[str, float]]:
    """Spend log-normal; clicks zero for most users, a count for ``clickers`` of them."""
    return [
        {
            "spend": rng.lognormvariate(3, 1),
            "clicks": float(rng.randint(1, 9)) if rng.random() < clickers else 0.0,
        }
        for _ in range(n)
    ]


def test_psi_is_zero_for_equal_distributions_and_grows_with_the_move() -> None:
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    small = psi([0.25] * 4, [0.3, 0.2, 0.25, 0.25])
    large = psi([0.25] * 4, [0.7, 0.1, 0.1, 0.1])
    assert 0 < small < 0.1 < large


def test_a_frequent_value_gets_its_own_bin_so_moving_off_it_shows() -> None:
    rng = random.Random(1)
    before = [0.0] * 800 + [rng.uniform(1, 10) for _ in range(200)]
    bins = Bins.of(before)
    assert bins.atoms == frozenset({0.0})
    after = [0.5] * 300 + [0.0] * 500 + before[800:]  # 30% leave zero, by a little
    assert drift(bins.shares(before), bins.shares(after)) > 0.25
    assert drift(bins.shares(before), bins.shares(before)) == 0.0


def test_confirmation_needs_consecutive_checks_over_the_threshold() -> None:
    c = Confirmer(threshold=0.2, confirm=3)
    assert [c.check(v) for v in (0.3, 0.3, 0.1, 0.3, 0.3, 0.3, 0.3)] == [
        False, False, False, False, False, True, False,
    ]  # fmt: skip


def test_a_stationary_population_never_confirms_a_drift() -> None:
    rng = random.Random(2)
    monitor = DriftMonitor(FEATURES, confirm=2)
    for _ in range(30):
        d = monitor.check(population(rng), {0: 0.5, 1: 0.5}, {0: (1.0, 0.0), 1: (5.0, 1.0)}, (1, 1))
        assert d.confirmed == {"feature": 0, "segment": 0, "centroid": 0}, d
        assert max(d.feature_psi.values()) < 0.1


def test_a_moved_feature_is_confirmed_once_then_the_reference_follows() -> None:
    rng = random.Random(3)
    monitor = DriftMonitor(FEATURES, confirm=2)
    centres = {0: (1.0, 0.0)}
    monitor.check(population(rng), {0: 1.0}, centres, (1, 1))  # the reference
    found = []
    for _ in range(6):  # half the users start clicking ads
        d = monitor.check(population(rng, clickers=0.5), {0: 1.0}, centres, (1, 1))
        found.append(d.features)
    assert found[:2] == [[], ["clicks"]]  # confirmed on the second check over the threshold
    assert found[2:] == [[], [], [], []]  # the new normal is the reference now
    assert d.feature_psi["clicks"] < 0.1 and d.feature_psi["spend"] < 0.1


def test_segment_shares_and_centres_moving_are_confirmed() -> None:
    rng = random.Random(4)
    users = population(rng)
    monitor = DriftMonitor(FEATURES, confirm=1, segment_threshold=0.1, centroid_threshold=1.0)
    monitor.check(users, {0: 0.5, 1: 0.5}, {0: (0.0, 0.0), 1: (4.0, 0.0)}, (2.0, 1.0))
    d = monitor.check(users, {0: 0.5, 1: 0.5}, {0: (1.0, 0.0), 1: (4.0, 0.0)}, (2.0, 1.0))
    assert d.centroid_shift == {0: pytest.approx(0.5), 1: 0.0} and d.centroids == []
    d = monitor.check(users, {0: 0.85, 1: 0.15}, {0: (3.0, 0.0), 1: (4.0, 0.0)}, (2.0, 1.0))
    assert d.segments and d.centroids == [0]
    assert d.confirmed == {"feature": 0, "segment": 1, "centroid": 1}
    d = monitor.check(users, {0: 0.85, 1: 0.15, 2: 0.0}, {1: (4.0, 0.0)}, (2.0, 1.0))
    assert not d.segments and d.centroid_shift == {1: 0.0}  # 0 vanished: no stale reference


def test_too_small_a_population_is_not_judged() -> None:
    monitor = DriftMonitor(FEATURES, min_population=100)
    d = monitor.check(population(random.Random(5), n=50), {}, {}, (1, 1))
    assert d.feature_psi == {} and d.confirmed == {"feature": 0, "segment": 0, "centroid": 0}
