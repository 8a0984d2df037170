"""The segment trainer: learns from the current population, publishes snapshots.

Learning on every event would let heavy users and half-formed early profiles
dominate the model. The trainer instead keeps each user's latest feature values
(a keyed reservoir, bounded by random eviction) and, at every cycle, feeds River
a uniform sample of the *current population*, each user's values aged to the
trainer's event-time watermark. The learner stays a River online model; what
it learns from is the population as it is now.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from models.features import FeatureSpace
from models.segments import SegmentLearner, Snapshot


class Trainer:
    def __init__(
        self,
        space: FeatureSpace,
        learner: SegmentLearner,
        *,
        capacity: int = 50_000,
        learn_per_cycle: int = 2_000,
        share_sample: int = 2_000,
        seed: int = 42,
    ) -> None:
        self.space = space
        self.learner = learner
        self.capacity = capacity
        self.learn_per_cycle = learn_per_cycle
        self.share_sample = share_sample
        self.rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self.users: dict[str, tuple[dict[str, float], int]] = {}  # key -> (raw, as_of_ms)
        self.watermark_ms = 0
        self.pending = 0  # observations since the last cycle

    def observe(self, key: str, raw: Mapping[str, float], as_of_ms: int) -> None:
        """Record a user's latest raw feature values (as of their event time)."""
        if key not in self.users and len(self.users) >= self.capacity:
            victim = self.rng.choice(list(self.users))  # O(n) but only when full
            del self.users[victim]
        self.users[key] = (dict(raw), as_of_ms)
        self.watermark_ms = max(self.watermark_ms, as_of_ms)
        self.pending += 1

    def forget(self, key: str) -> None:
        self.users.pop(key, None)

    def _now_vector(self, raw: dict[str, float], as_of: int) -> dict[str, float]:
        return self.space.transform(self.space.age(raw, self.watermark_ms - as_of))

    def cycle(self, now_ms: int | None = None) -> Snapshot | None:
        """Learn from a sample of the population, then publish a snapshot."""
        now = max(now_ms or 0, self.watermark_ms)
        self.watermark_ms = now
        keys = list(self.users)
        if not keys:
            return None
        # uniform draws from the population: a small population is seen several times
        for key in self.rng.choices(keys, k=self.learn_per_cycle):
            self.learner.learn_one(self._now_vector(*self.users[key]))
        self.rng.shuffle(keys)
        sample = keys[: self.share_sample]
        population = [self._now_vector(*self.users[k]) for k in sample]
        self.pending = 0
        return self.learner.snapshot(now, population)

    @property
    def unsettled(self) -> bool:
        """True when the last cycle re-seeded a centroid and another cycle should follow."""
        return self.learner.unsettled

    def state(self) -> dict[str, Any]:
        return {
            "users": len(self.users),
            "watermark_ms": self.watermark_ms,
            "n_seen": self.learner.n_seen,
        }
