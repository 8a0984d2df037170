"""models/segments.py: snapshots, assignment, and the River segment learner."""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from segstream.models.segments import Segment, SegmentLearner, Snapshot, build_clusterer
from segstream.schemas.settings import (
    CluStreamConfig,
    DBStreamConfig,
    KMeansConfig,
    StreamKMeansConfig,
)

FEATURES = ("a", "b", "c")
BLOBS = ((0.0, 0.0, 0.0), (5.0, 5.0, 0.0), (0.0, 5.0, 5.0))

CONFIGS = {
    "kmeans": KMeansConfig(n_clusters=3),
    "streamkmeans": StreamKMeansConfig(n_clusters=3, chunk_size=50),
    "dbstream": DBStreamConfig(),
    "clustream": CluStreamConfig(n_macro_clusters=3, max_micro_clusters=20, time_gap=100),
}


def blobs(n_per: int = 100, seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    data = [
        {f: c[i] + rng.gauss(0, 0.3) for i, f in enumerate(FEATURES)}
        for c in BLOBS
        for _ in range(n_per)
    ]
    rng.shuffle(data)
    return data


DATA = blobs()


def trained(config, data=DATA, seed: int = 1) -> SegmentLearner:
    learner = SegmentLearner(FEATURES, config, seed=seed)
    for x in data:
        learner.learn_one(x)
    return learner


# ------------------------------------------------------------------ Snapshot

SNAP = Snapshot(
    version=3,
    features=("x", "y"),
    mean=(10.0, -2.0),
    std=(2.0, 0.5),
    segments=(Segment(4, (0.0, 0.0), 0.6), Segment(7, (2.0, 2.0), 0.4)),
    next_id=8,
    created_ms=1_767_225_600_000,
    n_seen=1234,
)


def test_snapshot_dict_round_trip():
    assert Snapshot.from_dict(SNAP.to_dict()) == SNAP


def test_snapshot_json_round_trip():
    assert Snapshot.from_dict(orjson.loads(orjson.dumps(SNAP.to_dict()))) == SNAP


def test_snapshot_round_trip_of_a_learned_snapshot():
    snap = trained(CONFIGS["dbstream"]).snapshot(5, DATA)
    assert snap is not None
    back = Snapshot.from_dict(json.loads(json.dumps(snap.to_dict())))
    assert back == snap
    assert [back.assign(x).segment for x in DATA[:50]] == [
        snap.assign(x).segment for x in DATA[:50]
    ]


def test_scale_and_unscale():
    z = SNAP.scale({"x": 14.0, "y": -1.0})
    assert z == [2.0, 2.0]
    assert SNAP.unscale(z) == {"x": 14.0, "y": -1.0}
    assert SNAP.scale({}) == [-5.0, 4.0]  # missing features read as 0


def test_assign_nearest():
    a = SNAP.assign({"x": 10.2, "y": -2.0})
    assert a.segment == 4
    assert a.distance == pytest.approx(0.1)
    assert SNAP.assign({"x": 13.8, "y": -1.1}).segment == 7


def test_assign_scores_are_a_distribution_favouring_the_nearest():
    a = SNAP.assign({"x": 13.0, "y": -1.2})
    assert set(a.scores) == {4, 7}
    assert sum(a.scores.values()) == pytest.approx(1.0, abs=2e-3)
    assert a.scores[7] > a.scores[4]


def test_assign_hysteresis():
    # z = (1.1, 1.1): 1.556 from segment 4, 1.273 from segment 7
    x = {"x": 12.2, "y": -1.45}
    assert SNAP.assign(x).segment == 7
    assert SNAP.assign(x, current=4, hysteresis=0.25).segment == 4
    assert SNAP.assign(x, current=4, hysteresis=0.1).segment == 7
    # an unknown current segment (retired) does not block the move
    assert SNAP.assign(x, current=99, hysteresis=0.9).segment == 7


def test_assign_without_segments():
    empty = Snapshot(1, ("x",), (0.0,), (1.0,), (), 0, 0, 0)
    with pytest.raises(ValueError):
        empty.assign({"x": 1.0})


def test_segment_lookup():
    assert SNAP.segment(7) == Segment(7, (2.0, 2.0), 0.4)
    assert SNAP.segment(5) is None


# ------------------------------------------------------------------- learner


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_clusterer_produces_a_snapshot(name):
    learner = trained(CONFIGS[name])
    snap = learner.snapshot(1_000, DATA)
    assert snap is not None
    assert snap.version == 1
    assert snap.features == FEATURES
    assert snap.n_seen == len(DATA)
    assert snap.created_ms == 1_000
    ids = [s.id for s in snap.segments]
    assert ids == sorted(set(ids)) and ids
    assert snap.next_id > max(ids)
    assert all(s.share >= 0.01 for s in snap.segments)
    assert sum(s.share for s in snap.segments) <= 1.0 + 1e-3
    # the scaler's statistics are the data's
    for i, f in enumerate(FEATURES):
        values = [x[f] for x in DATA]
        mean = sum(values) / len(values)
        assert snap.mean[i] == pytest.approx(mean, abs=1e-9)
        assert snap.std[i] > 0
    # every point gets a published segment
    assert {snap.assign(x).segment for x in DATA} <= set(ids)
    assert learner.published is snap


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_second_snapshot_increments_version_and_keeps_next_id_monotonic(name):
    learner = trained(CONFIGS[name])
    first = learner.snapshot(1, DATA)
    for x in blobs(20, seed=1):
        learner.learn_one(x)
    second = learner.snapshot(2, DATA)
    assert second.version == first.version + 1
    assert second.next_id >= first.next_id


def test_dbstream_finds_the_planted_blobs():
    snap = trained(CONFIGS["dbstream"]).snapshot(1, DATA)
    labels = {}
    for x, blob in zip(DATA, _blob_of(DATA), strict=True):
        labels.setdefault(blob, set()).add(snap.assign(x).segment)
    assert all(len(s) == 1 for s in labels.values())
    assert len({next(iter(s)) for s in labels.values()}) == 3


def _blob_of(data):
    return [
        min(range(3), key=lambda i: math.dist([x[f] for f in FEATURES], BLOBS[i])) for x in data
    ]


def test_stranded_kmeans_centroid_is_reseeded_and_recovers_the_blobs():
    learner = trained(CONFIGS["kmeans"])
    for f in FEATURES:  # strand one centroid far from every user
        learner.clusterer.centers[2][f] = 100.0
    snap = learner.snapshot(1, DATA)
    assert learner.unsettled
    assert len(snap.segments) <= 2  # the stranded centroid is not published
    # the dead centroid now sits on the user worst served by the live ones
    z = [snap.scale(x) for x in DATA]
    worst = max(z, key=lambda p: min(math.dist(p, s.centroid) for s in snap.segments))
    moved = [learner.clusterer.centers[2][f] for f in FEATURES]
    assert moved == pytest.approx(worst)
    for x in DATA:  # one more cycle of learning
        learner.learn_one(x)
    snap = learner.snapshot(2, DATA)
    assert not learner.unsettled
    assert len(snap.segments) == 3
    by_blob: dict[int, set[int]] = {}
    for x, blob in zip(DATA, _blob_of(DATA), strict=True):
        by_blob.setdefault(blob, set()).add(snap.assign(x).segment)
    assert sorted(len(s) for s in by_blob.values()) == [1, 1, 1]
    assert len(set().union(*by_blob.values())) == 3


@pytest.mark.parametrize("name", ["dbstream", "clustream", "streamkmeans"])
def test_only_kmeans_is_reseeded(name):
    learner = trained(CONFIGS[name])
    learner.snapshot(1, DATA)
    assert learner.unsettled is False


def test_no_snapshot_before_data():
    learner = SegmentLearner(FEATURES, CONFIGS["kmeans"])
    assert learner.snapshot(0, DATA) is None
    learner.learn_one(DATA[0])
    assert learner.snapshot(0, DATA) is None  # one sample is not a model
    learner.learn_one(DATA[1])
    assert learner.snapshot(0, []) is None  # no population to measure shares
    assert learner.published is None


def test_learn_one_does_not_mutate_its_input_and_ignores_extra_keys():
    learner = SegmentLearner(FEATURES, CONFIGS["kmeans"])
    x = {"a": 1.0, "b": 2.0, "c": 3.0, "extra": 9.0}
    before = dict(x)
    learner.learn_one(x)
    learner.learn_one({"a": 2.0})  # missing features read as 0
    assert x == before
    assert learner.n_seen == 2
    assert set(learner.scaler.means) == set(FEATURES)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_seed_same_snapshot(name):
    a = trained(CONFIGS[name], seed=5).snapshot(1, DATA)
    b = trained(CONFIGS[name], seed=5).snapshot(1, DATA)
    assert a == b


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_pickle_round_trip_continues_identically(name):
    learner = trained(CONFIGS[name], data=DATA[:150])
    copy = pickle.loads(pickle.dumps(learner))  # noqa: S301 - our own bytes
    for x in DATA[150:]:
        learner.learn_one(x)
        copy.learn_one(x)
    a, b = learner.snapshot(1, DATA), copy.snapshot(1, DATA)
    assert a == b
    assert [a.assign(x) for x in DATA] == [b.assign(x) for x in DATA]


def test_build_clusterer_rejects_unknown_types():
    class Fake:
        type = "hdbscan"

    with pytest.raises(ValueError, match="hdbscan"):
        build_clusterer(Fake(), seed=1)


def test_build_clusterer_passes_hyperparameters():
    km = build_clusterer(KMeansConfig(n_clusters=7, halflife=0.3, sigma=2.0), seed=11)
    assert (km.n_clusters, km.halflife, km.sigma, km.seed) == (7, 0.3, 2.0, 11)
    db = build_clusterer(DBStreamConfig(clustering_threshold=2.5), seed=11)
    assert db.clustering_threshold == 2.5


# ------------------------------------------- reproducibility across processes

_SCRIPT = """
import json, random
from segstream.models.segments import SegmentLearner
from segstream.schemas.settings import (CluStreamConfig, DBStreamConfig, KMeansConfig,
                              StreamKMeansConfig)
rng = random.Random(0)
blobs = [(0, 0, 0), (5, 5, 0), (0, 5, 5)]
data = [{f: c[i] + rng.gauss(0, 0.3) for i, f in enumerate("abc")}
        for c in blobs for _ in range(100)]
rng.shuffle(data)
configs = {
    "kmeans": KMeansConfig(n_clusters=3),
    "streamkmeans": StreamKMeansConfig(n_clusters=3, chunk_size=50),
    "dbstream": DBStreamConfig(),
    "clustream": CluStreamConfig(n_macro_clusters=3, max_micro_clusters=20, time_gap=100),
}
out = {}
for name, cfg in configs.items():
    learner = SegmentLearner("abc", cfg, seed=1)
    for x in data:
        learner.learn_one(x)
    snap = learner.snapshot(0, data)
    out[name] = [[round(v, 9) for v in s.centroid] for s in snap.segments]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def snapshots_by_hash_seed():
    """The same seeded training run in two fresh interpreters with different hash seeds."""
    procs = {}
    for hash_seed in ("0", "1"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")}
        env["PYTHONHASHSEED"] = hash_seed
        procs[hash_seed] = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
    results = {}
    for hash_seed, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results[hash_seed] = json.loads(out)
    return results


_NOT_REPEATABLE = pytest.mark.xfail(
    strict=True,
    reason="River limitation: STREAMKMeans and CluStream build their inner k-means lazily and "
    "draw its centroids in the iteration order of a set of feature names, which depends on "
    "PYTHONHASHSEED; SegmentLearner pre-draws them only for KMeans (the default)",
    raises=AssertionError,
)


@pytest.mark.parametrize(
    "name",
    [
        "kmeans",
        pytest.param("streamkmeans", marks=_NOT_REPEATABLE),
        pytest.param("clustream", marks=_NOT_REPEATABLE),
        "dbstream",
    ],
)
def test_same_seed_same_snapshot_in_another_process(snapshots_by_hash_seed, name):
    assert snapshots_by_hash_seed["0"][name] == snapshots_by_hash_seed["1"][name]
