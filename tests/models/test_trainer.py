"""models/trainer.py: population reservoir, aging to the watermark, learning cycles."""

from __future__ import annotations

import math
import random

import pytest

from segstream.models.drift import DriftMonitor
from segstream.models.features import DAY_MS, feature_space
from segstream.models.segments import SegmentLearner, Snapshot
from segstream.models.trainer import ADAPT_FACTOR, Population, Trainer
from segstream.schemas.settings import KMeansConfig

SPACE = feature_space(["recency_days", "frequency_30d", "purchases"])


class RecordingLearner:
    """Stands in for SegmentLearner: records what it is taught."""

    def __init__(self) -> None:
        self.learned: list[dict[str, float]] = []
        self.snapshots: list[tuple[int, list[dict[str, float]]]] = []
        self.n_seen = 0
        self.unsettled = False
        self.published: Snapshot | None = None

    def learn_one(self, x):
        self.learned.append(dict(x))
        self.n_seen += 1

    def snapshot(self, now_ms, population):
        self.snapshots.append((now_ms, [dict(p) for p in population]))
        self.published = Snapshot(len(self.snapshots), (), (), (), (), 0, now_ms, self.n_seen)
        return self.published


def raw(recency: float, freq: float, purchases: float) -> dict[str, float]:
    return {"recency_days": recency, "frequency_30d": freq, "purchases": purchases}


def test_cycle_without_users_publishes_nothing():
    learner = RecordingLearner()
    assert Trainer(SPACE, learner).cycle(123) is None
    assert learner.learned == [] and learner.snapshots == []


def test_observe_keeps_the_latest_values_per_user():
    t = Trainer(SPACE, RecordingLearner())
    t.observe("u:1", raw(0, 1, 0), 1_000)
    t.observe("u:1", raw(0, 2, 1), 2_000)
    t.observe("u:2", raw(0, 1, 0), 1_500)
    assert t.users["u:1"] == (raw(0, 2, 1), 2_000)
    assert len(t.users) == 2
    assert t.watermark_ms == 2_000
    assert t.pending == 3


def test_observe_copies_the_values():
    t = Trainer(SPACE, RecordingLearner())
    values = raw(0, 1, 0)
    t.observe("u:1", values, 1_000)
    values["purchases"] = 99.0
    assert t.users["u:1"][0]["purchases"] == 0.0


def test_capacity_is_bounded_and_the_newest_user_is_kept():
    t = Trainer(SPACE, RecordingLearner(), capacity=3, seed=1)
    for i in range(10):
        t.observe(f"u:{i}", raw(0, 1, 0), 1_000 + i)
        assert len(t.users) <= 3
        assert f"u:{i}" in t.users
    # updating a user already present never evicts anyone
    before = set(t.users)
    t.observe("u:9", raw(0, 5, 0), 5_000)
    assert set(t.users) == before


def test_forget():
    t = Trainer(SPACE, RecordingLearner())
    t.observe("u:1", raw(0, 1, 0), 1_000)
    t.forget("u:1")
    t.forget("u:never")
    assert len(t.users) == 0 and "u:1" not in t.users


def test_population_keeps_every_other_user_when_one_leaves():
    pop = Population()
    for i in range(5):
        pop.put(f"u:{i}", ({"x": float(i)}, i))
    pop.pop("u:1")  # from the middle: the last user takes its slot
    pop.pop("u:4")  # the last one
    pop.pop("u:never")
    pop.put("u:2", ({"x": 20.0}, 20))  # an update keeps the slot
    assert sorted(pop) == ["u:0", "u:2", "u:3"]
    assert [pop[k] for k in ("u:0", "u:2", "u:3")] == [
        ({"x": 0.0}, 0),
        ({"x": 20.0}, 20),
        ({"x": 3.0}, 3),
    ]
    assert {raw["x"] for raw, _ in pop.draw(random.Random(1), 200)} == {0.0, 20.0, 3.0}


def test_a_full_trainer_makes_room_for_a_new_user_by_a_random_eviction():
    t = Trainer(SPACE, RecordingLearner(), capacity=50, seed=5)
    for i in range(200):
        t.observe(f"u:{i}", raw(0, 1, 0), 1_000 + i)
    assert len(t.users) == 50 and "u:199" in t.users
    kept = {int(k[2:]) for k in t.users}
    assert min(kept) < 150  # not just the latest 50: older users survive at random


def test_cycle_ages_everyone_to_the_watermark():
    learner = RecordingLearner()
    t = Trainer(SPACE, learner, seed=3, learn_per_cycle=20)
    t.observe("u:old", raw(0.0, 1.0, 2.0), 0)
    t.observe("u:new", raw(0.0, 1.0, 2.0), 30 * DAY_MS)
    assert t.cycle() is learner.published
    now, population = learner.snapshots[0]
    assert now == 30 * DAY_MS
    by_recency = sorted(population, key=lambda x: x["recency_days"])
    fresh, aged = by_recency
    assert fresh == SPACE.transform(raw(0.0, 1.0, 2.0))
    assert aged["recency_days"] == pytest.approx(math.log1p(30.0))
    assert aged["frequency_30d"] == pytest.approx(math.log1p(math.exp(-1)))
    assert aged["purchases"] == pytest.approx(math.log1p(2.0))  # counters do not age
    # what is learned is drawn from the same aged population
    assert len(learner.learned) == 20
    assert {str(x) for x in learner.learned} <= {str(x) for x in population}
    assert t.pending == 0


def test_cycle_time_never_goes_back():
    learner = RecordingLearner()
    t = Trainer(SPACE, learner)
    t.observe("u:1", raw(0, 1, 0), 10 * DAY_MS)
    t.cycle(5 * DAY_MS)
    assert learner.snapshots[-1][0] == 10 * DAY_MS
    t.cycle(12 * DAY_MS)
    assert learner.snapshots[-1][0] == 12 * DAY_MS
    assert t.watermark_ms == 12 * DAY_MS
    _, population = learner.snapshots[-1]
    assert population[0]["recency_days"] == pytest.approx(math.log1p(2.0))


def test_cycle_sample_sizes():
    learner = RecordingLearner()
    t = Trainer(SPACE, learner, learn_per_cycle=7, share_sample=4)
    for i in range(20):
        t.observe(f"u:{i}", raw(0, i, 0), 1_000)
    t.cycle()
    assert len(learner.learned) == 7
    population = learner.snapshots[0][1]
    assert len(population) == 4
    assert len({str(x) for x in population}) == 4  # distinct users


def test_a_small_population_is_learned_several_times():
    learner = RecordingLearner()
    t = Trainer(SPACE, learner, learn_per_cycle=60, seed=2)
    for i in range(3):
        t.observe(f"u:{i}", raw(0, i, 0), 1_000)
    t.cycle()
    assert len(learner.learned) == 60
    counts = {str(x): 0 for x in learner.snapshots[0][1]}
    for x in learner.learned:
        counts[str(x)] += 1
    assert len(counts) == 3 and min(counts.values()) >= 5  # uniform-ish, all users


def test_unsettled_follows_the_learner():
    learner = RecordingLearner()
    t = Trainer(SPACE, learner)
    assert t.unsettled is False
    learner.unsettled = True
    assert t.unsettled is True


def test_cycle_is_repeatable_for_a_seed():
    def run(seed):
        learner = RecordingLearner()
        t = Trainer(SPACE, learner, learn_per_cycle=5, seed=seed)
        for i in range(30):
            t.observe(f"u:{i}", raw(0, i, 0), 1_000)
        t.cycle()
        return learner.learned

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_state_and_a_real_learner():
    learner = SegmentLearner(SPACE.names, KMeansConfig(n_clusters=2), seed=1)
    t = Trainer(SPACE, learner, seed=1)
    for i in range(40):
        heavy = i % 2 == 0
        t.observe(f"u:{i}", raw(1.0, 30.0 if heavy else 1.0, 10.0 if heavy else 0.0), DAY_MS + i)
    snap = t.cycle()
    assert snap is not None and snap.n_seen == t.learn_per_cycle
    assert t.state() == {"users": 40, "watermark_ms": DAY_MS + 39, "n_seen": t.learn_per_cycle}
    # the two planted groups end up in different segments
    heavy = snap.assign(SPACE.transform(raw(1.0, 30.0, 10.0))).segment
    light = snap.assign(SPACE.transform(raw(1.0, 1.0, 0.0))).segment
    assert heavy != light


def _group(t: Trainer, prefix: str, n: int, recency: float, freq: float, buys: float) -> None:
    for i in range(n):
        t.observe(f"u:{prefix}{i}", raw(recency + i % 3, freq + i % 2, buys), 10 * DAY_MS)


def test_report_names_segments_that_appear_and_scores_the_clustering():
    learner = SegmentLearner(SPACE.names, KMeansConfig(n_clusters=2, halflife=0.3), seed=1)
    t = Trainer(SPACE, learner, seed=1, learn_per_cycle=400, quality_sample=200)
    _group(t, "a", 60, 1, 30, 8)
    _group(t, "b", 60, 60, 0, 0)
    for _ in range(4):
        snap = t.cycle()
    assert snap is not None and len(snap.segments) == 2
    first = t.cycle()
    assert first is not None
    assert t.report.appeared == [] and t.report.vanished == []  # the same two, same ids
    assert t.report.silhouette is not None and t.report.silhouette > 0.7  # well apart
    learner.published = None  # as if nothing was published before
    t.cycle()
    assert t.report.appeared == [s.id for s in first.segments]


def test_a_confirmed_feature_drift_makes_the_next_cycle_learn_more():
    learner = RecordingLearner()
    monitor = DriftMonitor(["frequency_30d"], confirm=1, min_population=1)
    t = Trainer(SPACE, learner, seed=1, learn_per_cycle=10, drift=monitor)
    for i in range(50):
        t.observe(f"u:{i}", raw(1, 0, 0), DAY_MS)
    t.cycle()
    assert not t.unsettled
    for i in range(50):
        t.observe(f"u:{i}", raw(1, 20 + i, 0), DAY_MS)
    t.cycle()
    assert t.report.drifts.features == ["frequency_30d"] and t.unsettled
    t.cycle()
    assert [len(learner.learned)] == [10 + 10 + 10 * ADAPT_FACTOR]
    assert not t.unsettled


def test_drift_waits_until_the_pipeline_caught_up_then_an_idle_check_judges():
    learner = RecordingLearner()
    monitor = DriftMonitor(["frequency_30d"], confirm=1, min_population=1)
    t = Trainer(SPACE, learner, seed=1, learn_per_cycle=5, drift=monitor)
    for i in range(20):
        t.observe(f"u:{i}", raw(1, 0, 0), DAY_MS)
    t.cycle()
    assert t.report.checked and not t.drift_due
    for i in range(20):
        t.observe(f"u:{i}", raw(1, 20 + i, 0), 2 * DAY_MS)
    t.cycle(caught_up=False)  # a backlog is being worked off
    assert not t.report.checked and t.drift_due
    assert t.report.drifts.confirmed == {"feature": 0, "segment": 0, "centroid": 0}
    t.observe("u:0", raw(1, 20, 0), 2 * DAY_MS)
    assert t.idle_check() is None  # new data: the next cycle judges, not an idle check
    t.cycle(caught_up=False)
    assert t.idle_check() is not None and t.report.checked  # caught up, no new data
    assert t.report.drifts.features == ["frequency_30d"]
    assert t.idle_check() is None  # nothing new to judge


def test_learning_between_versions_teaches_the_learner_without_a_version():
    learner = RecordingLearner()
    t = Trainer(SPACE, learner, learn_per_cycle=50, seed=3)
    for i in range(40):
        t.observe(f"u:{i}", raw(1, 40, 2) if i % 2 else raw(90, 1, 0), 1_000)
    assert t.unlearned == 40
    t.learn()
    assert len(learner.learned) == 50 and learner.snapshots == []  # no version
    assert t.unlearned == 0 and t.pending == 40  # the next cycle still publishes them
    t.learn(7)
    assert len(learner.learned) == 57
    t.cycle()
    assert len(learner.snapshots) == 1 and t.pending == 0
