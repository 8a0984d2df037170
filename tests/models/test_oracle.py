"""models/oracle.py on models/synthetic.py data: the in-memory reference pipeline."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sklearn.metrics import adjusted_rand_score

from segstream.models.features import feature_space
from segstream.models.oracle import run
from segstream.models.segments import SegmentLearner
from segstream.models.synthetic import Generator
from segstream.models.trainer import Trainer
from segstream.schemas.parse import EventParser
from segstream.schemas.settings import DEFAULT_FEATURES, KMeansConfig, Settings

KEY = b"oracle-test-key"
USERS = 400
_DEFAULTS = Settings.model_fields
SPACE = feature_space(
    DEFAULT_FEATURES,
    _DEFAULTS["paid_channels"].default,
    _DEFAULTS["social_channels"].default,
    _DEFAULTS["email_channels"].default,
)


def _parser(g: Generator) -> EventParser:
    end = datetime.fromtimestamp(g.end_ms / 1000, tz=UTC)
    return EventParser(KEY, now=lambda: end + timedelta(days=1))


@pytest.fixture(scope="module")
def stream():
    g = Generator(users=USERS, seed=7)
    generated = list(g.events())
    records = [(e.source, orjson.dumps(e.value)) for e in generated]
    return g, generated, records


@pytest.fixture(scope="module")
def result(stream):
    g, _, records = stream
    trainer = Trainer(SPACE, SegmentLearner(DEFAULT_FEATURES, KMeansConfig(), seed=42), seed=42)
    return run(records, _parser(g), SPACE, trainer)


def _owner(g: Generator) -> dict[str, str]:
    """Every identifier a generated user carries → that user's ground-truth profile key."""
    owner: dict[str, str] = {}
    for u in g.users:
        key = f"u:{u.user_id}" if u.user_id else f"a:{u.anonymous_id}"
        owner[u.anonymous_id] = key
        if u.user_id:
            owner[u.user_id] = key
        if u.email:
            owner[u.email] = key
    return owner


def _expected_events(g: Generator, generated) -> Counter:
    owner = _owner(g)
    expected: Counter = Counter()
    for e in generated:
        v = e.value
        ident = v.get("user_id") or v.get("email") or v.get("anonymous_id")
        expected[owner[ident]] += 1
    return expected


def test_no_generated_record_is_rejected(result):
    assert result.rejections == []


def test_every_user_has_exactly_one_live_profile(stream, result):
    g, _, _ = stream
    assert len(g.truth) == USERS
    assert set(result.profiles) == set(g.truth)


def test_every_event_lands_in_its_users_profile(stream, result):
    g, generated, _ = stream
    expected = _expected_events(g, generated)
    got = {key: p.events for key, p in result.profiles.items()}
    assert got == dict(expected)
    assert sum(got.values()) == len(generated)


def test_identity_stitching_joined_every_identifier(stream, result):
    g, _, _ = stream
    for u in g.users:
        if not u.user_id:
            continue
        key = f"u:{u.user_id}"
        e_alias = "e:" + hmac.new(KEY, u.email.encode(), hashlib.sha256).hexdigest()
        assert result.aliases.get(f"a:{u.anonymous_id}") == key
        assert result.aliases.get(e_alias) == key
        p = result.profiles[key]
        assert {f"a:{u.anonymous_id}", e_alias} <= set(p.aliases)
        assert p.email_sha256 == hashlib.sha256(u.email.encode()).hexdigest()


def test_email_only_ad_clicks_and_crm_records_reach_the_customer(stream, result):
    g, generated, _ = stream
    owner = _owner(g)
    clicks: Counter = Counter()
    deals: Counter = Counter()
    crm_amount: Counter = Counter()
    for e in generated:
        v = e.value
        if v["source"] == "ad" and v["type"] == "click" and "email" in v:
            clicks[owner[v["email"]]] += 1
        if v["source"] == "crm":
            assert "anonymous_id" not in v  # only user id and raw email
            if v["type"] == "deal_won":
                deals[owner[v["user_id"]]] += 1
            if v["type"] in ("deal_won", "purchase"):
                crm_amount[owner[v["user_id"]]] += v["amount"]
    assert clicks and deals and crm_amount
    for key, n in clicks.items():
        assert g.truth[key] == "b2b_buyer"
        assert result.profiles[key].ad_clicks == n
    for key, n in deals.items():
        assert result.profiles[key].deals_won == n
    for key, total in crm_amount.items():
        assert result.profiles[key].crm_amount == pytest.approx(total)


def test_segments_recover_the_planted_personas(stream, result):
    g, _, _ = stream
    assert result.snapshot is not None
    keys = sorted(g.truth)
    truth = [g.truth[k] for k in keys]
    found = [result.segments[k] for k in keys]
    assert -1 not in found
    assert adjusted_rand_score(truth, found) >= 0.9


def test_every_record_twice_gives_identical_profiles(stream, result):
    g, _, records = stream
    doubled = [r for rec in records for r in (rec, rec)]
    again = run(doubled, _parser(g), SPACE)
    assert again.rejections == []
    assert again.aliases == result.aliases
    assert set(again.profiles) == set(result.profiles)
    for key, p in result.profiles.items():
        assert again.profiles[key].to_dict() == p.to_dict(), key
