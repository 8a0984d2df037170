"""A 2-D picture of the population: users scaled like the model, projected by PCA.

The report draws a sample of users as points coloured by segment. To look like what
the model sees, each user's clustering vector (``FeatureSpace.transform`` of their
features) is scaled with the model's scaler, then projected on the two directions
along which the sample varies most (principal components, by SVD).

The live view does not store the scaler itself, but the segment catalog implies it:
for every feature, a segment's centroid (plain units, so ``transform`` of it is in
clustering space) equals ``mean + std * z``. :func:`fit_scaling` recovers ``mean`` and
``std`` per feature by least squares over the segments, and falls back to the
sample's own mean and deviation where the segments' z-scores are too close together
to tell (one segment, or a feature on which all segments look alike).

>>> import numpy as np
>>> points = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 1.0], [6.0, 1.0]])
>>> p = pca_2d(points)
>>> [round(float(v), 3) for v in p.explained]
[0.991, 0.009]
>>> p.points.shape
(4, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]

MIN_Z_SPREAD = 0.5  # segments' z-scores of a feature must span this much to fit its scale


@dataclass(frozen=True)
class Scaling:
    """Per-feature ``(x - mean) / std``; ``from_model`` says which columns came from the
    catalog (the model's scaler) rather than from the sample."""

    mean: Matrix
    std: Matrix
    from_model: tuple[bool, ...]

    def apply(self, x: Matrix) -> Matrix:
        return (x - self.mean) / self.std


def fit_scaling(
    sample: Matrix,
    centres: Matrix | None = None,
    z: Matrix | None = None,
    min_spread: float = MIN_Z_SPREAD,
) -> Scaling:
    """The model's scaling where the catalog implies it, else the sample's.

    ``sample`` is users × features in clustering space; ``centres`` the segments'
    centroids in the same space and ``z`` their z-scores (segments × features).

    >>> import numpy as np
    >>> centres = np.array([[3.0, 5.0], [7.0, 5.0]])   # mean 5, std 2 on the first
    >>> z = np.array([[-1.0, 0.0], [1.0, 0.0]])       # all alike on the second
    >>> s = fit_scaling(np.array([[0.0, 1.0], [0.0, 3.0]]), centres, z)
    >>> s.mean.round(6).tolist(), s.std.round(6).tolist(), s.from_model
    ([5.0, 2.0], [2.0, 1.0], (True, False))
    """
    sample = np.asarray(sample, dtype=np.float64)
    d = sample.shape[1]
    mean = sample.mean(axis=0) if len(sample) else np.zeros(d)
    std = sample.std(axis=0) if len(sample) else np.ones(d)
    std = np.where(std > 1e-12, std, 1.0)
    flags = [False] * d
    if centres is not None and z is not None and len(centres) >= 2:
        for j in range(d):
            zj, cj = z[:, j], centres[:, j]
            if float(zj.max() - zj.min()) < min_spread:
                continue
            design = np.column_stack([np.ones_like(zj), zj])
            (m, s), *_ = np.linalg.lstsq(design, cj, rcond=None)
            if s > 1e-9:
                mean[j], std[j], flags[j] = m, s, True
    return Scaling(mean, std, tuple(flags))


@dataclass(frozen=True)
class Projection:
    """Principal axes of a sample: ``points`` is the sample on them (n × 2)."""

    centre: Matrix  # the sample's mean (subtracted before projecting)
    components: Matrix  # 2 × features, unit rows
    explained: Matrix  # share of the sample's variance along each axis
    points: Matrix

    def project(self, x: Matrix) -> Matrix:
        """Other rows (e.g. segment centroids) on the same axes."""
        return np.asarray((x - self.centre) @ self.components.T, dtype=np.float64)

    def loadings(self, names: list[str], axis: int, top: int = 2) -> list[tuple[str, float]]:
        """The features that weigh most on an axis, with their signed weights."""
        row = self.components[axis]
        order = np.argsort(-np.abs(row))[:top]
        return [(names[i], float(row[i])) for i in order if abs(row[i]) > 1e-12]


def pca_2d(x: Matrix) -> Projection:
    """Project ``x`` (n × features) on its two principal components.

    Signs are fixed (each axis's heaviest feature weighs positively), so the same data
    always gives the same picture. Fewer than two features or points give zero axes.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    centre = x.mean(axis=0) if n else np.zeros(d)
    components = np.zeros((2, d))
    explained = np.zeros(2)
    if n >= 2 and d >= 1:
        _, sv, vt = np.linalg.svd(x - centre, full_matrices=False)
        k = min(2, len(sv))
        components[:k] = vt[:k]
        total = float((sv**2).sum())
        if total > 0:
            explained[:k] = sv[:k] ** 2 / total
        for i in range(k):
            if components[i, np.argmax(np.abs(components[i]))] < 0:
                components[i] = -components[i]
    points = np.asarray((x - centre) @ components.T, dtype=np.float64)
    return Projection(centre, components, explained, points)
