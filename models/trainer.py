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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segstream.models.drift import DriftMonitor, Drifts
from segstream.models.features import FeatureSpace
from segstream.models.quality import silhouette
from segstream.models.segments import SegmentLearner, Snapshot

ADAPT_FACTOR = 4  # after a confirmed feature drift, the next cycle learns this many times more


@dataclass
class Report:
    """What a cycle found besides the snapshot: drift, quality, segments born and gone."""

    drifts: Drifts = field(default_factory=Drifts)
    checked: bool = False  # drift was judged in this report (else: catching up, or no monitor)
    silhouette: float | None = None
    appeared: list[int] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)


Sample = tuple[dict[str, float], int]  # a user's raw feature values, as of (ms)


class Population:
    """Each user's latest sample, with a random user drawn in O(1): the keys sit in a
    list (a user's slot in ``_slot``) and leave by swapping with the last. Listing the
    keys of a dict per draw cost 0.2 ms at 50,000 users, once for every new user when
    full: at 100,000 users the trainer's largest cost (a cProfile of the worker put 34 s
    of its run in 155,000 such calls)."""

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._samples: list[Sample] = []
        self._slot: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._slot

    def __getitem__(self, key: str) -> Sample:
        return self._samples[self._slot[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._keys))

    def put(self, key: str, sample: Sample) -> None:
        slot = self._slot.get(key)
        if slot is None:
            self._slot[key] = len(self._keys)
            self._keys.append(key)
            self._samples.append(sample)
        else:
            self._samples[slot] = sample

    def pop(self, key: str) -> None:
        slot = self._slot.pop(key, None)
        if slot is None:
            return
        last_key, last = self._keys.pop(), self._samples.pop()
        if slot < len(self._keys):  # the last user takes the freed slot
            self._keys[slot], self._samples[slot] = last_key, last
            self._slot[last_key] = slot

    def draw(self, rng: random.Random, k: int) -> list[Sample]:
        """``k`` samples drawn uniformly with replacement."""
        n = len(self._samples)
        return [self._samples[int(rng.random() * n)] for _ in range(k)] if n else []

    def any_key(self, rng: random.Random) -> str:
        return self._keys[int(rng.random() * len(self._keys))]


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
        drift: DriftMonitor | None = None,
        quality_sample: int = 1_000,
    ) -> None:
        self.space = space
        self.learner = learner
        self.capacity = capacity
        self.learn_per_cycle = learn_per_cycle
        self.share_sample = share_sample
        self.rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self.users = Population()  # key -> (raw, as_of_ms)
        self.watermark_ms = 0
        self.pending = 0  # observations since the last cycle
        self.unlearned = 0  # observations since the last learning step
        self.drift = drift
        self.quality_sample = quality_sample
        self.adapting = False  # a feature drift was confirmed: learn faster for a cycle
        self.report = Report()
        self.drift_due = False  # a check was skipped while catching up

    def observe(self, key: str, raw: Mapping[str, float], as_of_ms: int) -> None:
        """Record a user's latest raw feature values (as of their event time)."""
        if key not in self.users and len(self.users) >= self.capacity:
            self.users.pop(self.users.any_key(self.rng))  # full: a random user makes room
        self.users.put(key, (dict(raw), as_of_ms))
        self.watermark_ms = max(self.watermark_ms, as_of_ms)
        self.pending += 1
        self.unlearned += 1

    def forget(self, key: str) -> None:
        self.users.pop(key)

    def _now_vector(self, raw: dict[str, float], as_of: int) -> dict[str, float]:
        return self.space.transform(self.space.age(raw, self.watermark_ms - as_of))

    def cycle_draws(self) -> int:
        """The draws a cycle learns: more right after a confirmed feature drift."""
        return self.learn_per_cycle * (ADAPT_FACTOR if self.adapting else 1)

    def cycle(
        self, now_ms: int | None = None, caught_up: bool = True, learned: bool = False
    ) -> Snapshot | None:
        """Learn from a sample of the population, then publish a snapshot.

        ``caught_up`` says the pipeline has worked off what had arrived: only then is
        drift judged. Mid-backlog (or mid-replay), users whose events are still queued
        would look as if they had gone quiet; :meth:`idle_check` judges once caught up.
        ``learned``: the caller has learned ``cycle_draws()`` already (in slices).
        """
        now = max(now_ms or 0, self.watermark_ms)
        self.watermark_ms = now
        keys = list(self.users)
        if not keys:
            return None
        if not learned:
            self.learn(self.cycle_draws())
        self.adapting = False
        population = self._sample(keys)
        self.pending = 0
        before = self.learner.published
        snap = self.learner.snapshot(now, population)
        if snap is not None:
            self.report = self._report(before, snap, population, caught_up)
        return snap

    def learn(self, draws: int | None = None) -> None:
        """A learning step without a new version: ``draws`` uniform draws from the
        population (a small population is seen several times); ``learn_per_cycle`` by
        default. Versions cost every user a re-assignment, learning does not."""
        for raw, as_of in self.users.draw(self.rng, draws or self.learn_per_cycle):
            self.learner.learn_one(self._now_vector(raw, as_of))
        self.unlearned = 0

    def idle_check(self) -> Report | None:
        """A drift check on the population as it stands, when the last cycle had to skip
        its own (not caught up) and no data came since: the model is not republished."""
        snap = self.learner.published
        if not self.drift_due or snap is None or not self.users or self.pending:
            return None
        self.report = self._report(snap, snap, self._sample(list(self.users)), caught_up=True)
        return self.report

    def _sample(self, keys: list[str]) -> list[dict[str, float]]:
        self.rng.shuffle(keys)
        return [self._now_vector(*self.users[k]) for k in keys[: self.share_sample]]

    def _report(
        self,
        before: Snapshot | None,
        snap: Snapshot,
        population: Sequence[Mapping[str, float]],
        caught_up: bool,
    ) -> Report:
        report = Report()
        old = {s.id for s in before.segments} if before else set()
        new = {s.id for s in snap.segments}
        report.appeared, report.vanished = sorted(new - old), sorted(old - new)
        if self.drift is not None and caught_up:
            report.drifts = self.drift.check(
                population,
                {s.id: s.share for s in snap.segments},
                {s.id: tuple(snap.unscale(s.centroid).values()) for s in snap.segments},
                snap.std,
            )
            self.adapting = bool(report.drifts.features)
        report.checked = self.drift is not None and caught_up
        self.drift_due = self.drift is not None and not caught_up
        if self.quality_sample and snap.segments:
            points = [snap.scale(x) for x in population[: self.quality_sample]]
            labels = [snap.assign(x).segment for x in population[: self.quality_sample]]
            report.silhouette = silhouette(points, labels)
        return report

    @property
    def unsettled(self) -> bool:
        """True when another cycle should follow soon: the last one re-seeded a centroid,
        or confirmed a feature drift the model should adapt to."""
        return self.learner.unsettled or self.adapting

    def state(self) -> dict[str, Any]:
        return {
            "users": len(self.users),
            "watermark_ms": self.watermark_ms,
            "n_seen": self.learner.n_seen,
        }
