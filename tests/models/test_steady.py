"""The stationary generator: a control that stays put, and a shift that shows."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from segstream.models.drift import Bins, drift
from segstream.models.features import feature_space, lifetime_free
from segstream.models.oracle import run as oracle_run
from segstream.models.steady import SteadyGenerator
from segstream.schemas.parse import EventParser
from segstream.schemas.privacy import hash_email_field
from segstream.schemas.settings import Settings

S = Settings()
SPACE = feature_space(S.features, S.paid_channels, S.social_channels, S.email_channels)
KEY = S.email_hash_key.get_secret_value().encode()


def _population(records: list[tuple[str, bytes]]) -> list[dict[str, float]]:
    parser = EventParser(KEY, now=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    o = oracle_run(records, parser, SPACE)
    return [SPACE.raw(p, o.watermark_ms) for p in o.profiles.values()]


def _records(events) -> list[tuple[str, bytes]]:
    return [(e.source, orjson.dumps(hash_email_field(e.value, KEY))) for e in events]


def _psi(before: list[dict[str, float]], after: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for f in lifetime_free(S.features):
        bins = Bins.of([x[f] for x in before])
        out[f] = drift(bins.shares([x[f] for x in before]), bins.shares([x[f] for x in after]))
    return out


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, float]]:
    out = {}
    for shift in (None, "bargain_browser"):
        g = SteadyGenerator(users=200, seed=5, days=90)
        history = _records(g.events())
        later = _records(g.later(20, shift=shift))
        out[str(shift)] = _psi(_population(history), _population(history + later))
    return out


def test_continuing_the_population_unchanged_moves_no_feature(runs) -> None:
    assert max(runs["None"].values()) < 0.15, runs["None"]


def test_paid_search_reaching_one_persona_moves_its_channel_mix(runs) -> None:
    shifted = runs["bargain_browser"]
    assert shifted["share_paid"] > 1.0 and shifted["share_social"] > 1.0
    assert shifted["ad_clicks_30d"] > 0.25


def test_later_continues_after_the_end_with_fresh_ids() -> None:
    g = SteadyGenerator(users=30, seed=2, days=30)
    first = list(g.events())
    end = g.end_ms
    more = list(g.later(10))
    assert g.end_ms == end + 10 * 86_400_000
    assert min(e.value["ts"] for e in more) > max(e.value["ts"] for e in first)
    ids = [e.value["event_id"] for e in first + more]
    assert len(ids) == len(set(ids))
    with pytest.raises(ValueError, match="unknown persona"):
        g.later(1, shift="nobody")


def test_opening_balances_put_the_money_windows_at_their_settled_level() -> None:
    g = SteadyGenerator(users=50, seed=3, days=30)
    events = list(g.events())
    openings = [e for e in events if e.value["ts"] == g.start_ms]
    assert openings and all(
        e.value.get("revenue") or e.value.get("cost") or e.value.get("amount") for e in openings
    )
    assert not any(
        "session_id" in e.value or "channel" in e.value for e in openings if e.source == "web"
    )
