"""models/synthetic.py: the planted-persona generator."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from segstream.models.synthetic import DAY_MS, PERSONAS, Generated, Generator
from segstream.schemas.parse import EventParser, Rejection

END = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def small():
    g = Generator(users=40, seed=3)
    return g, list(g.events())


def test_same_seed_same_events(small):
    g, events = small
    again = list(Generator(users=40, seed=3).events())
    assert again == events
    assert Generator(users=40, seed=3).truth == g.truth


def test_other_seed_other_events(small):
    _, events = small
    other = list(Generator(users=40, seed=4).events())
    assert [e.value for e in other] != [e.value for e in events]


def test_event_ids_are_unique_and_time_is_ordered(small):
    _, events = small
    ids = [e.value["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    ts = [e.value["ts"] for e in events]
    assert ts == sorted(ts)


def test_events_fall_in_the_window(small):
    g, events = small
    start = int((END - timedelta(days=180)).timestamp() * 1000)
    end = int(END.timestamp() * 1000)
    assert (g.start_ms, g.end_ms) == (start, end)
    for e in events:
        assert start <= e.value["ts"] <= end + DAY_MS


def test_truth_has_one_entry_per_user_and_balanced_personas(small):
    g, _ = small
    assert len(g.truth) == 40
    assert set(g.truth.values()) == set(PERSONAS)
    assert set(Counter(g.truth.values()).values()) == {8}


def test_only_paid_newcomers_stay_anonymous(small):
    g, _ = small
    for key, persona in g.truth.items():
        assert key.startswith("a:" if persona == "paid_newcomer" else "u:")


def test_every_record_is_valid_and_sources_match(small):
    _, events = small
    parser = EventParser(b"k", now=lambda: END + timedelta(days=1))
    results = [parser.parse(orjson.dumps(e.value), e.source) for e in events]
    assert not [r for r in results if isinstance(r, Rejection)]
    assert {e.source for e in events} == {"web", "ad", "crm"}
    assert all(e.value["source"] == e.source for e in events)


def test_identity_is_exercised(small):
    _, events = small
    values = [e.value for e in events]
    both = [v for v in values if v.get("user_id") and v.get("anonymous_id")]
    email_only_ads = [
        v for v in values if v["source"] == "ad" and "email" in v and "anonymous_id" not in v
    ]
    crm = [v for v in values if v["source"] == "crm"]
    assert both, "customers log in from an anonymous session"
    assert email_only_ads, "some ad clicks carry only an email"
    assert crm and all(v["user_id"] and v["email"] for v in crm)


def test_personas_can_be_restricted():
    g = Generator(users=6, seed=1, personas=("lapsed", "b2b_buyer"))
    assert Counter(g.truth.values()) == {"lapsed": 3, "b2b_buyer": 3}
    assert {v.value["source"] for v in g.events()} == {"web", "ad", "crm"}


def _by_user(events: list[Generated]) -> dict[int, list[tuple[int, str]]]:
    """Each user's (ts, event id) pairs; the user's number is in every id it carries."""
    out: dict[int, list[tuple[int, str]]] = {}
    for e in events:
        v = e.value
        if v.get("user_id") or v.get("anonymous_id"):
            user = int((v.get("user_id") or v["anonymous_id"]).split("-")[1])
        else:
            user = int(v["email"].removeprefix("user").split("@")[0])
        out.setdefault(user, []).append((v["ts"], v["event_id"]))
    return out


def test_events_per_user_keeps_each_users_latest_events() -> None:
    full = _by_user(list(Generator(users=30, seed=4).events()))
    cut = _by_user(list(Generator(users=30, seed=4, events_per_user=3).events()))
    assert cut.keys() == full.keys()
    for user, events in full.items():
        latest = sorted(events)[-3:]
        assert sorted(cut[user]) == latest, user


def test_events_per_user_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Generator(users=3, events_per_user=0)
