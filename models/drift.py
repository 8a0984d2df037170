"""Drift: has the population moved away from what the segments were drawn on?

Three signals, each a distance from a *reference* taken when monitoring started or
when the last drift of its kind was confirmed (the reference then moves to now, so
one lasting change is counted once, and a later one again):

* **feature**: per feature, the population stability index (PSI) of the current
  population's values against the reference population's, on ten quantile bins of
  the reference. Rules of thumb: below 0.1 stable, 0.1 to 0.25 moving, above 0.25
  shifted.
* **segment**: PSI of the segment shares against the reference shares.
* **centroid**: how far each segment's centre moved from its reference position,
  in standard deviations of the population (z units).

A signal above its threshold on ``confirm`` consecutive checks is a confirmed drift.
The monitor is fed the population sample the trainer learns from (each user's latest
values, aged to now), so a user who is merely active is not a shift; the trainer
checks once per model cycle.

>>> round(psi([0.5, 0.5], [0.5, 0.5]), 6)
0.0
>>> round(psi([0.5, 0.5], [0.9, 0.1]), 3)
0.879
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EPS = 1e-4  # share given to an empty bin, so PSI stays finite
BINS = 10
ATOM_SHARE = 0.05


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two distributions over the same bins."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPS), max(a, EPS)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True, slots=True)
class Bins:
    """Bins drawn from a reference sample: a value the reference holds often (5% or
    more, such as 0 for "never clicked an ad") is a bin of its own, and the other values
    fall into intervals between quantiles of the rest. Without the atoms, a feature that
    is mostly 0 would put 0 and 0.2 in one bin and miss a group moving off zero."""

    atoms: frozenset[float]
    edges: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float], bins: int = BINS) -> Bins:
        n = len(values)
        atoms = frozenset(v for v, c in Counter(values).items() if c >= ATOM_SHARE * n)
        rest = sorted(v for v in values if v not in atoms)
        m = len(rest)
        edges = sorted({rest[(m * i) // bins] for i in range(1, bins)}) if m else []
        return cls(atoms, tuple(edges))

    def shares(self, values: Iterable[float]) -> dict[tuple[int, float], float]:
        """Share of ``values`` per bin (an atom's key is ``(-1, value)``)."""
        counts: Counter[tuple[int, float]] = Counter()
        n = 0
        for v in values:
            counts[(-1, v) if v in self.atoms else (bisect_right(self.edges, v), 0.0)] += 1
            n += 1
        return {k: c / n for k, c in counts.items()} if n else {}


def drift(reference: Mapping[Any, float], current: Mapping[Any, float]) -> float:
    """PSI of two binned distributions given as ``bin -> share`` (missing bins are empty)."""
    keys = sorted(set(reference) | set(current))
    return psi([reference.get(k, 0.0) for k in keys], [current.get(k, 0.0) for k in keys])


@dataclass
class Confirmer:
    """Counts consecutive checks over a threshold; says when ``confirm`` is reached."""

    threshold: float
    confirm: int
    streak: int = 0

    def check(self, value: float) -> bool:
        self.streak = self.streak + 1 if value > self.threshold else 0
        if self.streak >= self.confirm:
            self.streak = 0
            return True
        return False


@dataclass
class Drifts:
    """What one check found: the current values and the drifts it confirmed."""

    feature_psi: dict[str, float] = field(default_factory=dict)
    segment_psi: float = 0.0
    centroid_shift: dict[int, float] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)  # confirmed
    segments: bool = False
    centroids: list[int] = field(default_factory=list)

    @property
    def confirmed(self) -> dict[str, int]:
        return {
            "feature": len(self.features),
            "segment": int(self.segments),
            "centroid": len(self.centroids),
        }


class DriftMonitor:
    """Feature, segment and centroid drift against references that move on confirmation."""

    def __init__(
        self,
        features: Sequence[str],
        *,
        feature_threshold: float = 0.25,
        segment_threshold: float = 0.1,
        centroid_threshold: float = 1.0,
        confirm: int = 3,
        min_population: int = 100,
    ) -> None:
        self.features = tuple(features)
        self.min_population = min_population
        self.bins: dict[str, Bins] = {}
        self.reference: dict[str, dict[Any, float]] = {}  # feature -> bin shares
        self.feature_check = {f: Confirmer(feature_threshold, confirm) for f in self.features}
        self.segment_check = Confirmer(segment_threshold, confirm)
        self.centroid_threshold = centroid_threshold
        self.centroid_streak: dict[int, Confirmer] = {}
        self.confirm = confirm
        self.shares: dict[int, float] | None = None
        self.centres: dict[int, tuple[float, ...]] = {}  # reference, in raw units

    def _set_reference(self, feature: str, values: Sequence[float]) -> None:
        self.bins[feature] = Bins.of(values)
        self.reference[feature] = self.bins[feature].shares(values)

    def check(
        self,
        population: Sequence[Mapping[str, float]],
        shares: Mapping[int, float],
        centres: Mapping[int, Sequence[float]],
        scale: Sequence[float],
    ) -> Drifts:
        """One check: ``population`` a sample of current users' vectors; ``shares`` and
        ``centres`` (raw units) of the segments now; ``scale`` the population's standard
        deviation per feature, to measure centre moves in z units."""
        out = Drifts()
        if len(population) < self.min_population:
            return out
        self._features(population, out)
        self._segments(shares, out)
        self._centroids(centres, scale, out)
        return out

    def _features(self, population: Sequence[Mapping[str, float]], out: Drifts) -> None:
        for f in self.features:
            values = [x.get(f, 0.0) for x in population]
            if f not in self.reference:
                self._set_reference(f, values)
            value = drift(self.reference[f], self.bins[f].shares(values))
            out.feature_psi[f] = value
            if self.feature_check[f].check(value):
                out.features.append(f)
                self._set_reference(f, values)

    def _segments(self, shares: Mapping[int, float], out: Drifts) -> None:
        if self.shares is None:
            self.shares = dict(shares)
        out.segment_psi = drift(self.shares, shares)
        if self.segment_check.check(out.segment_psi):
            out.segments = True
            self.shares = dict(shares)

    def _centroids(
        self, centres: Mapping[int, Sequence[float]], scale: Sequence[float], out: Drifts
    ) -> None:
        for sid, centre in centres.items():
            ref = self.centres.setdefault(sid, tuple(centre))
            shift = math.sqrt(
                sum(((c - r) / s) ** 2 for c, r, s in zip(centre, ref, scale, strict=True))
            )
            out.centroid_shift[sid] = shift
            check = self.centroid_streak.setdefault(
                sid, Confirmer(self.centroid_threshold, self.confirm)
            )
            if check.check(shift):
                out.centroids.append(sid)
                self.centres[sid] = tuple(centre)
        for gone in set(self.centres) - set(centres):
            del self.centres[gone]
            self.centroid_streak.pop(gone, None)
