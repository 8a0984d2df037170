"""schemas/records.py: the public records on the segments, segment-changes and dlq topics."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.schemas.records import DeadLetter, SegmentChange, SegmentRecord

RECORD = SegmentRecord(
    profile="u:cust-17",
    segment=7,
    version=12,
    seq=431,
    updated_ms=1_767_225_600_123,
    scores={0: 0.05, 7: 0.9, 12: 0.05},
    features={"recency_days": 1.5, "monetary_180d": 240.25},
)


# ----------------------------------------------------------------- SegmentRecord


def test_segment_record_json_round_trip():
    back = SegmentRecord.from_json(RECORD.to_json())
    assert back == RECORD
    assert all(type(k) is int for k in back.scores)
    assert back.scores[7] == 0.9


def test_segment_record_without_features_round_trips():
    rec = SegmentRecord("a:anon-1", 0, 1, 1, 0, {0: 1.0})
    back = SegmentRecord.from_json(rec.to_json())
    assert back == rec
    assert back.features is None


def test_segment_record_is_plain_json_with_string_score_keys_on_the_wire():
    data = orjson.loads(RECORD.to_json())
    assert data["profile"] == "u:cust-17"
    assert data["segment"] == 7
    assert set(data["scores"]) == {"0", "7", "12"}
    assert data["features"] == RECORD.features


@settings(database=None, max_examples=100, deadline=None)
@given(
    profile=st.text(min_size=1, max_size=40),
    segment=st.integers(0, 10_000),
    version=st.integers(0, 2**31),
    seq=st.integers(0, 2**53),
    updated_ms=st.integers(0, 2**48),
    scores=st.dictionaries(
        st.integers(0, 10_000), st.floats(0, 1, allow_nan=False).map(lambda v: round(v, 3))
    ),
)
def test_segment_record_round_trip_any(profile, segment, version, seq, updated_ms, scores):
    rec = SegmentRecord(profile, segment, version, seq, updated_ms, scores)
    back = SegmentRecord.from_json(rec.to_json())
    assert back == rec
    assert set(back.scores) == set(scores)
    assert all(type(k) is int for k in back.scores)


# ----------------------------------------------------------------- SegmentChange

BASE = {"profile": "u:cust-17", "old": 3, "new": 5, "seq": 99, "version": 4}


def test_make_id_is_deterministic():
    assert SegmentChange.make_id(**BASE) == SegmentChange.make_id(**BASE)
    reordered = {k: BASE[k] for k in reversed(BASE)}
    assert SegmentChange.make_id(**reordered) == SegmentChange.make_id(**BASE)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("profile", "u:cust-18"),
        ("profile", "a:cust-17"),
        ("old", None),
        ("old", 4),
        ("new", 6),
        ("seq", 100),
        ("version", 5),
    ],
)
def test_make_id_changes_with_each_field(field, value):
    assert SegmentChange.make_id(**{**BASE, field: value}) != SegmentChange.make_id(**BASE)


def test_make_id_distinct_across_many_changes():
    ids = {
        SegmentChange.make_id(p, old, new, seq, v)
        for p, old, new, seq, v in itertools.product(
            ("u:1", "u:2", "a:1"), (None, 0, 1), (0, 1, 2), (1, 2), (1, 2)
        )
    }
    assert len(ids) == 3 * 3 * 3 * 2 * 2


def test_make_id_does_not_confuse_swapped_old_and_new():
    a = SegmentChange.make_id("u:1", 1, 2, 5, 1)
    b = SegmentChange.make_id("u:1", 2, 1, 5, 1)
    assert a != b


def test_make_id_is_stable_across_processes():
    """A replayed change carries the same id: no per-process salt (unlike ``hash``)."""
    import subprocess
    import sys

    code = (
        "from schemas.records import SegmentChange;"
        "print(SegmentChange.make_id('u:cust-17', 3, 5, 99, 4))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert out.stdout.strip() == SegmentChange.make_id(**BASE)


def test_segment_change_to_json():
    change = SegmentChange(
        id=SegmentChange.make_id("u:1", None, 2, 7, 3),
        profile="u:1",
        old=None,
        new=2,
        version=3,
        seq=7,
        at_ms=1_000,
        emitted_ms=2_000,
    )
    data = orjson.loads(change.to_json())
    assert data["old"] is None
    assert data["new"] == 2
    assert data["id"] == change.id
    assert SegmentChange(**data) == change


# -------------------------------------------------------------------- DeadLetter


def letter(raw: bytes) -> DeadLetter:
    return DeadLetter(
        reason="malformed_json",
        detail="unexpected character",
        topic="ns.web",
        partition=3,
        offset=123456,
        key=None,
        value=raw.decode("latin-1"),
        stage="parse",
        at_ms=1_767_225_600_000,
    )


def test_dead_letter_round_trip():
    dl = letter(b'{"event_id": "e1", broken')
    back = DeadLetter.from_json(dl.to_json())
    assert back == dl
    assert back.as_dict() == orjson.loads(dl.to_json())


def test_dead_letter_with_key_round_trips():
    dl = DeadLetter("invalid_field", "ts: bad", "ns.ad", 0, 0, "user-9", "x", "parse", 1)
    assert DeadLetter.from_json(dl.to_json()) == dl


def test_raw_value_recovers_every_byte_value_through_json():
    raw = bytes(range(256))
    dl = letter(raw)
    wire = dl.to_json()
    wire.decode("utf-8")  # valid UTF-8 JSON, whatever the original bytes were
    assert DeadLetter.from_json(wire).raw_value() == raw


@settings(database=None, max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_raw_value_recovers_arbitrary_bytes(raw):
    assert DeadLetter.from_json(letter(raw).to_json()).raw_value() == raw
