"""models/checkpoint.py: signed model checkpoints (snapshot + pickled River learner)."""

from __future__ import annotations

import base64
import pickle
import random

import orjson
import pytest

from segstream.models import checkpoint
from segstream.models.checkpoint import CheckpointError, decode, encode
from segstream.models.segments import SegmentLearner, Snapshot
from segstream.schemas.settings import KMeansConfig

KEY = b"model-secret-for-tests"
FEATURES = ("a", "b")
CENTRES = ((0.0, 0.0), (6.0, 1.0), (1.0, 7.0))


def sample(n: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        cx, cy = rng.choice(CENTRES)
        out.append({"a": cx + rng.gauss(0, 0.4), "b": cy + rng.gauss(0, 0.4)})
    return out


DATA = sample(300, seed=3)
MORE = sample(100, seed=4)


@pytest.fixture
def learner() -> SegmentLearner:
    lr = SegmentLearner(FEATURES, KMeansConfig(n_clusters=3), seed=5)
    for x in DATA:
        lr.learn_one(x)
    assert lr.snapshot(1_000, DATA) is not None
    return lr


def predictions(lr: SegmentLearner, xs: list[dict[str, float]]) -> list[int]:
    return [lr.clusterer.predict_one(lr.scaler.transform_one(dict(x))) for x in xs]


def test_round_trip_restores_snapshot_and_an_equivalent_learner(learner):
    snap = learner.published
    raw = encode(snap, learner, KEY)
    back_snap, back = decode(raw, KEY)
    assert back_snap == snap
    assert isinstance(back, SegmentLearner)
    assert back is not learner
    assert back.n_seen == learner.n_seen == len(DATA)
    probe = sample(200, seed=11)
    assert predictions(back, probe) == predictions(learner, probe)
    # the published snapshot assigns the same either way
    assert [back_snap.assign(x).segment for x in probe] == [snap.assign(x).segment for x in probe]


def test_restored_learner_resumes_learning_exactly_like_the_original(learner):
    raw = encode(learner.published, learner, KEY)
    _, back = decode(raw, KEY)
    for x in MORE:
        learner.learn_one(x)
        back.learn_one(x)
    a = learner.snapshot(2_000, DATA)
    b = back.snapshot(2_000, DATA)
    assert a is not None and b is not None
    assert a == b
    assert a.version == 2  # continued from the published version, not from scratch
    probe = sample(100, seed=12)
    assert predictions(back, probe) == predictions(learner, probe)


def test_checkpoint_is_json_with_the_snapshot_in_plain_data(learner):
    data = orjson.loads(encode(learner.published, learner, KEY))
    assert Snapshot.from_dict(data["snapshot"]) == learner.published


def test_without_learner_decodes_to_none(learner):
    raw = encode(learner.published, None, KEY)
    snap, back = decode(raw, KEY)
    assert snap == learner.published
    assert back is None


PROBE: list[str] = []


def _probe(tag: str) -> None:
    PROBE.append(tag)


class Boom:
    """Unpickling this calls ``_probe``: proof that bytes were (or were not) unpickled."""

    def __reduce__(self):
        return (_probe, ("unpickled",))


@pytest.fixture
def no_unpickle(monkeypatch):
    """Records (and refuses) every pickle.loads call made during the test."""
    calls: list[bytes] = []

    def refuse(data, *args, **kwargs):
        calls.append(data)
        raise AssertionError("pickle.loads called on an unverified checkpoint")

    monkeypatch.setattr(checkpoint.pickle, "loads", refuse)
    yield calls
    assert calls == [], "an unverified learner was unpickled"


def test_wrong_key_raises_and_never_unpickles(learner, no_unpickle):
    raw = encode(learner.published, learner, b"another-secret")
    with pytest.raises(CheckpointError):
        decode(raw, KEY)


def test_payload_signed_with_attacker_key_is_not_unpickled(learner):
    PROBE.clear()
    raw = encode(learner.published, Boom(), b"attacker")  # type: ignore[arg-type]
    with pytest.raises(CheckpointError):
        decode(raw, KEY)
    assert PROBE == []
    # the same payload under the right key would run: the probe works
    decode(encode(learner.published, Boom(), KEY), KEY)  # type: ignore[arg-type]
    assert PROBE == ["unpickled"]
    PROBE.clear()


def tamper(raw: bytes) -> bytes:
    data = orjson.loads(raw)
    text = data["learner"]
    i = len(text) // 2
    flipped = "A" if text[i] != "A" else "B"
    data["learner"] = text[:i] + flipped + text[i + 1 :]
    assert base64.b64decode(data["learner"]) != base64.b64decode(text)
    return orjson.dumps(data)


def test_tampered_learner_bytes_raise_and_never_unpickle(learner, no_unpickle):
    raw = tamper(encode(learner.published, learner, KEY))
    with pytest.raises(CheckpointError):
        decode(raw, KEY)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"[]",
        b"null",
        b'"text"',
        b"{}",
        b'{"snapshot": {}, "learner": "", "sig": ""}',
    ],
    ids=["empty", "not-json", "list", "null", "string", "no-keys", "bad-snapshot"],
)
def test_malformed_checkpoint_raises_checkpoint_error(raw):
    with pytest.raises(CheckpointError):
        decode(raw, KEY)


def test_missing_signature_or_learner_raises_checkpoint_error(learner):
    full = orjson.loads(encode(learner.published, learner, KEY))
    for missing in ("sig", "learner", "snapshot"):
        data = {k: v for k, v in full.items() if k != missing}
        with pytest.raises(CheckpointError):
            decode(orjson.dumps(data), KEY)


def test_learner_field_that_is_not_base64_raises_checkpoint_error(learner):
    data = orjson.loads(encode(learner.published, learner, KEY))
    data["learner"] = data["learner"][:-5]  # broken padding
    with pytest.raises(CheckpointError):
        decode(orjson.dumps(data), KEY)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


@pytest.mark.parametrize("sig", [12345, None, "é" * 64], ids=["int", "null", "non-ascii"])
def test_signature_of_the_wrong_type_raises_checkpoint_error(learner, no_unpickle, sig):
    data = orjson.loads(encode(learner.published, learner, KEY))
    data["sig"] = sig
    with pytest.raises(CheckpointError):
        decode(orjson.dumps(data), KEY)


# ------------------------------------------------------------ with_learner=False


def test_with_learner_false_returns_no_learner_and_skips_verification(learner, no_unpickle):
    wrong_key = encode(learner.published, learner, b"another-secret")
    snap, back = decode(wrong_key, KEY, with_learner=False)
    assert snap == learner.published
    assert back is None
    snap, back = decode(tamper(encode(learner.published, learner, KEY)), KEY, with_learner=False)
    assert snap == learner.published
    assert back is None


def test_with_learner_false_still_rejects_malformed_json():
    with pytest.raises(CheckpointError):
        decode(b"{not json", KEY, with_learner=False)


def test_pickle_is_what_is_signed(learner):
    """The learner field carries the pickle itself: it can be read back with the right key."""
    data = orjson.loads(encode(learner.published, learner, KEY))
    restored = pickle.loads(base64.b64decode(data["learner"]))  # noqa: S301 - our own bytes
    assert restored.n_seen == learner.n_seen
