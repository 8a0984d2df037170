"""Online segments: a River learner, and frozen snapshots that serve assignments.

The learner (:class:`SegmentLearner`) is a River ``StandardScaler`` followed by
a River clusterer chosen by configuration. It follows River's contract:
``learn_one(x)`` updates state and never mutates ``x``; hyperparameters are
fixed in ``__init__``; a ``seed`` makes runs repeatable.

Workers never assign with the learner itself. Every so often the learner
publishes a :class:`Snapshot`: the scaler's mean and deviation and the live
centroids, each under a *public* segment id matched to the previous snapshot's
ids (see :mod:`models.segment_ids`). Assigning is then a nearest-centroid look
up, identical on every worker, a few microseconds, with hysteresis so that a
user near a boundary does not flap.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from river import cluster, preprocessing

from segstream.models.segment_ids import match_ids
from segstream.models.swap import best_swap

log = logging.getLogger(__name__)
Point = tuple[float, ...]

MIN_SHARE = 0.01  # a centroid that wins fewer than 1% of recent samples is not a segment


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    centroid: tuple[float, ...]  # in the snapshot's scaled space (z-scores)
    share: float  # share of recent samples nearest to it


@dataclass(frozen=True, slots=True)
class Assignment:
    segment: int
    scores: dict[int, float]  # affinity per segment, sums to 1
    distance: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A published, immutable segment model: what workers assign with."""

    version: int
    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    segments: tuple[Segment, ...]
    next_id: int
    created_ms: int
    n_seen: int

    def scale(self, x: Mapping[str, float]) -> list[float]:
        return [
            (x.get(f, 0.0) - m) / s
            for f, m, s in zip(self.features, self.mean, self.std, strict=True)
        ]

    def unscale(self, z: Sequence[float]) -> dict[str, float]:
        return {
            f: v * s + m for f, v, m, s in zip(self.features, z, self.mean, self.std, strict=True)
        }

    def assign(
        self, x: Mapping[str, float], current: int | None = None, hysteresis: float = 0.0
    ) -> Assignment:
        """Nearest segment for ``x``; keeps ``current`` unless another is clearly closer.

        >>> snap = Snapshot(1, ("a",), (0.0,), (1.0,),
        ...                 (Segment(0, (0.0,), .5), Segment(1, (2.0,), .5)), 2, 0, 0)
        >>> snap.assign({"a": 1.1}).segment
        1
        >>> snap.assign({"a": 1.1}, current=0, hysteresis=0.2).segment
        0
        """
        if not self.segments:
            raise ValueError("snapshot has no segments yet")
        z = self.scale(x)
        dists = {seg.id: math.dist(z, seg.centroid) for seg in self.segments}
        best = min(dists, key=dists.__getitem__)
        if (
            current is not None
            and current in dists
            and best != current
            and dists[best] >= (1.0 - hysteresis) * dists[current]
        ):
            best = current
        nearest = dists[min(dists, key=dists.__getitem__)]
        weights = {sid: math.exp(nearest - d) for sid, d in dists.items()}  # no underflow
        total = sum(weights.values())
        scores = {sid: round(w / total, 3) for sid, w in weights.items()}
        return Assignment(best, scores, dists[best])

    def segment(self, segment_id: int) -> Segment | None:
        return next((s for s in self.segments if s.id == segment_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "features": list(self.features),
            "mean": list(self.mean),
            "std": list(self.std),
            "segments": [
                {"id": s.id, "centroid": list(s.centroid), "share": s.share} for s in self.segments
            ],
            "next_id": self.next_id,
            "created_ms": self.created_ms,
            "n_seen": self.n_seen,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Snapshot:
        return cls(
            version=int(d["version"]),
            features=tuple(d["features"]),
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
            segments=tuple(
                Segment(int(s["id"]), tuple(s["centroid"]), float(s["share"]))
                for s in d["segments"]
            ),
            next_id=int(d["next_id"]),
            created_ms=int(d["created_ms"]),
            n_seen=int(d["n_seen"]),
        )


def build_clusterer(config: Any, seed: int) -> Any:
    """The River clusterer for a ``schemas.settings`` clusterer config."""
    kind = config.type
    if kind == "kmeans":
        return cluster.KMeans(
            n_clusters=config.n_clusters, halflife=config.halflife, sigma=config.sigma, seed=seed
        )
    if kind == "streamkmeans":
        return cluster.STREAMKMeans(
            chunk_size=config.chunk_size, n_clusters=config.n_clusters, seed=seed
        )
    if kind == "dbstream":
        return cluster.DBSTREAM(
            clustering_threshold=config.clustering_threshold,
            fading_factor=config.fading_factor,
            cleanup_interval=config.cleanup_interval,
            intersection_factor=config.intersection_factor,
            minimum_weight=config.minimum_weight,
        )
    if kind == "clustream":
        return cluster.CluStream(
            n_macro_clusters=config.n_macro_clusters,
            max_micro_clusters=config.max_micro_clusters,
            time_gap=config.time_gap,
            seed=seed,
        )
    raise ValueError(f"unknown clusterer type {kind!r}")


class SegmentLearner:
    """River scaler + clusterer that learns one vector at a time and publishes snapshots."""

    def __init__(
        self,
        features: Sequence[str],
        clusterer: Any,
        *,
        seed: int = 42,
        max_distance: float = 3.0,
    ) -> None:
        self.features = tuple(features)
        self.config = clusterer
        self.seed = seed
        self.max_distance = max_distance
        self.scaler = preprocessing.StandardScaler()
        self.clusterer = build_clusterer(clusterer, seed)
        if clusterer.type == "kmeans":
            # River draws each centroid coordinate lazily, the first time a distance touches
            # it, in the iteration order of a set of feature names: that order depends on
            # PYTHONHASHSEED. Drawing them all now, in our fixed order, makes the seed
            # reproduce the same model in any process.
            for center in self.clusterer.centers.values():
                for f in self.features:
                    center[f]  # the lookup performs the draw
        self.n_seen = 0
        self.published: Snapshot | None = None
        self.unsettled = False  # a dead centroid was re-seeded: more learning will help

    def learn_one(self, x: Mapping[str, float]) -> None:
        row = {f: float(x.get(f, 0.0)) for f in self.features}
        self.scaler.learn_one(row)
        self.clusterer.learn_one(self.scaler.transform_one(row))
        self.n_seen += 1

    def snapshot(self, now_ms: int, population: Sequence[Mapping[str, float]]) -> Snapshot | None:
        """Freeze the current model under stable ids; ``None`` until it has seen data.

        ``population`` is a sample of current users' vectors: a centroid that is
        nearest to fewer than 1% of them is not published as a segment.
        """
        if self.n_seen < 2 or not population:
            return None
        mean = tuple(float(self.scaler.means.get(f, 0.0)) for f in self.features)
        std = tuple(
            math.sqrt(v) if (v := float(self.scaler.vars.get(f, 0.0))) > 1e-12 else 1.0
            for f in self.features
        )
        centers = self._centers()
        if not centers:
            return None
        points = [
            tuple((x.get(f, 0.0) - m) / s for f, m, s in zip(self.features, mean, std, strict=True))
            for x in population
        ]
        share = self._shares(centers, points)
        live = {label: c for label, c in centers.items() if share[label] >= MIN_SHARE}
        dead = [label for label in centers if label not in live]
        if dead:
            self.unsettled = self._reseed(dead, live, points)
        elif self._swap(centers, points):  # publish the better fit now
            centers = self._centers()
            share = self._shares(centers, points)
            live = {label: c for label, c in centers.items() if share[label] >= MIN_SHARE}
        prev = self.published
        next_id = prev.next_id if prev else 0
        previous: dict[int, tuple[float, ...]] = {}
        if prev:  # bring the previous centroids into today's scaled space
            for seg in prev.segments:
                raw = prev.unscale(seg.centroid)
                previous[seg.id] = tuple(
                    (raw[f] - m) / s for f, m, s in zip(self.features, mean, std, strict=True)
                )
        mapping, next_id = match_ids(
            previous, live, next_id=next_id, max_distance=self.max_distance
        )
        segments = tuple(
            sorted(
                (
                    Segment(int(mapping[label]), c, round(share[label], 4))
                    for label, c in live.items()
                ),
                key=lambda s: s.id,
            )
        )
        snap = Snapshot(
            version=(prev.version + 1) if prev else 1,
            features=self.features,
            mean=mean,
            std=std,
            segments=segments,
            next_id=next_id,
            created_ms=now_ms,
            n_seen=self.n_seen,
        )
        self.published = snap
        return snap

    def _centers(self) -> dict[Any, tuple[float, ...]]:
        if self.config.type in ("dbstream", "clustream"):
            # these re-cluster lazily, inside predict_one
            self.clusterer.predict_one(
                dict(zip(self.features, (0.0,) * len(self.features), strict=True))
            )
        raw = getattr(self.clusterer, "centers", {}) or {}
        return {
            label: tuple(float(c.get(f, 0.0)) for f in self.features) for label, c in raw.items()
        }

    def _swap(self, centers: Mapping[Any, tuple[float, ...]], points: list[Point]) -> bool:
        """Polish the k-means centroids on ``points``, or move one out of a local optimum
        (see :mod:`models.swap`); True when they changed. A move leaves the model
        ``unsettled``: another cycle follows. The move is drawn from a generator seeded
        by the seed and ``n_seen``, so the same learner makes it in any process."""
        self.unsettled = False
        if self.config.type != "kmeans":
            return False
        labels = list(centers)
        rng = random.Random(self.seed * 1_000_003 + self.n_seen)  # noqa: S311 - not security
        move = best_swap(points, [centers[label] for label in labels], rng)
        if move is None:
            return False
        log.info(
            "segment model: %s (within-segment sum of squares %.1f -> %.1f)",
            "polished the centroids"
            if move.index is None
            else "moved a centroid out of a local optimum",
            move.before,
            move.after,
        )
        for label, center in zip(labels, move.centers, strict=True):
            target = self.clusterer.centers[label]
            for f, v in zip(self.features, center, strict=True):
                target[f] = v
        self.unsettled = move.index is not None
        return True

    def _reseed(
        self,
        dead: list[Any],
        live: Mapping[Any, tuple[float, ...]],
        points: list[Point],
    ) -> bool:
        """Move dead k-means centroids to the users farthest from every live one.

        Online k-means can strand a centroid where no user is, leaving two real groups
        under one centroid; restarting it where the model fits worst (greedy
        k-means++) lets the next cycles split them. Only for the k-means family.
        """
        if self.config.type != "kmeans" or not live:
            return False
        anchors = list(live.values())
        for label in dead:
            far = max(points, key=lambda z: min(math.dist(z, a) for a in anchors))
            if min(math.dist(far, a) for a in anchors) < 1e-9:
                return False
            center = self.clusterer.centers[label]
            for f, v in zip(self.features, far, strict=True):
                center[f] = v
            anchors.append(far)
        return True

    @staticmethod
    def _shares(centers: Mapping[Any, tuple[float, ...]], points: list[Point]) -> dict[Any, float]:
        counts = dict.fromkeys(centers, 0)
        for z in points:
            nearest = min(centers, key=lambda lab: math.dist(z, centers[lab]))
            counts[nearest] += 1
        return {label: n / len(points) for label, n in counts.items()}
