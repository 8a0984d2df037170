"""models/features.py: incremental, pure per-profile feature updates."""

from __future__ import annotations

import copy
import dataclasses
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.models.features import (
    ALL_FEATURES,
    DAY_MS,
    MAX_ALIASES,
    MAX_SESSIONS,
    Profile,
    applied,
    apply,
    decayed_at,
    event_aliases,
    evolve,
    feature_space,
    merge,
    new_profile,
    seen,
    session_count,
    working_copy,
)
from segstream.models.features import fold as features_fold
from segstream.schemas.events import Event
from segstream.schemas.settings import DEFAULT_FEATURES

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def ev(eid: str, ts: int = T0, source: str = "web", type_: str = "page_view", **kw) -> Event:
    kw.setdefault("anonymous_id", "a1")
    return Event(eid, source, type_, ts, **kw)


def fold(events, profile: Profile | None = None, **kw) -> Profile:
    p = profile or new_profile("a:a1")
    for e in events:
        p = apply(p, e, **kw)
    return p


# --------------------------------------------------------------------- apply


def test_apply_is_pure():
    p = fold(
        [
            ev("e1", session_id="s1", device_type="mobile", channel="social"),
            ev("e2", source="ad", type_="click", channel="meta", cost=2.0),
        ]
    )
    before = copy.deepcopy(p.to_dict())
    q = apply(
        p,
        ev(
            "e3",
            T0 + 5,
            type_="purchase",
            amount=9.0,
            session_id="s2",
            device_type="desktop",
            channel="email",
            user_id="u1",
        ),
        offset_key="web/0",
        offset=7,
    )
    q = apply(q, ev("e4", T0 + 6, source="ad", type_="click", channel="meta", cost=1.0))
    assert p.to_dict() == before
    assert q.events == 4 and p.events == 2


def test_apply_counts_basics():
    p = apply(new_profile("a:a1"), ev("e1", session_id="s1"))
    assert (p.events, p.page_views, session_count(p), p.seq) == (1, 1, 1, 1)
    assert p.first_seen_ms == p.last_seen_ms == T0


def test_duplicate_event_id_returns_the_same_object():
    p = fold([ev("e1"), ev("e2", T0 + 1)])
    assert apply(p, ev("e1")) is p
    # a copy with different content but the same id is still a duplicate
    assert apply(p, ev("e2", T0 + 99, type_="purchase", amount=5.0)) is p
    assert seen(p, ev("e1"))
    assert not seen(p, ev("e3"))


def test_dedupe_window_is_bounded():
    p = fold([ev(f"e{i}", T0 + i) for i in range(10)], window=4)
    assert len(p.recent) == 4
    assert apply(p, ev("e9", T0 + 9), window=4) is p
    assert apply(p, ev("e0", T0), window=4) is not p  # fell out of the window


@pytest.mark.parametrize("offset", [5, 4, 0])
def test_offset_at_or_below_last_applied_is_skipped(offset):
    p = apply(new_profile("a:a1"), ev("e1"), offset_key="web/3", offset=5)
    assert p.offsets == {"web/3": 5}
    assert apply(p, ev("new-id"), offset_key="web/3", offset=offset) is p


def test_offsets_are_per_partition():
    p = apply(new_profile("a:a1"), ev("e1"), offset_key="web/3", offset=5)
    q = apply(p, ev("e2"), offset_key="web/4", offset=1)
    assert q is not p and q.offsets == {"web/3": 5, "web/4": 1}
    r = apply(q, ev("e3"), offset_key="web/3", offset=6)
    assert r.offsets["web/3"] == 6 and r.events == 3


def test_late_event():
    p = fold([ev("e1", T0 + 10 * DAY_MS)])
    q = apply(p, ev("e2", T0))
    assert q.late_events == 1
    assert q.last_seen_ms == T0 + 10 * DAY_MS
    assert q.first_seen_ms == T0
    assert q.events == 2


def test_event_at_same_time_is_not_late():
    q = fold([ev("e1"), ev("e2")])
    assert q.late_events == 0


def test_decayed_window_after_its_length_is_e_to_the_minus_one():
    p = fold([ev("e1")])
    assert decayed_at(p, "events_30d", T0) == pytest.approx(1.0)
    assert decayed_at(p, "events_30d", T0 + 30 * DAY_MS) == pytest.approx(math.exp(-1))
    assert decayed_at(p, "events_30d", T0 + 60 * DAY_MS) == pytest.approx(math.exp(-2))
    # asking about an earlier time does not grow the value
    assert decayed_at(p, "events_30d", T0 - DAY_MS) == pytest.approx(1.0)
    q = fold([ev("p1", type_="purchase", amount=100.0)])
    assert decayed_at(q, "revenue_180d", T0 + 180 * DAY_MS) == pytest.approx(100 * math.exp(-1))


def test_decayed_window_accumulates_from_event_to_event():
    p = fold([ev("e1"), ev("e2", T0 + 30 * DAY_MS)])
    assert p.decayed["events_30d"][0] == pytest.approx(1 + math.exp(-1))
    assert p.decayed["events_30d"][1] == T0 + 30 * DAY_MS


def test_late_event_is_folded_in_at_its_own_time():
    in_order = fold([ev("e1"), ev("e2", T0 + 30 * DAY_MS)])
    late = fold([ev("e2", T0 + 30 * DAY_MS), ev("e1")])
    later = T0 + 45 * DAY_MS
    assert decayed_at(late, "events_30d", later) == pytest.approx(
        decayed_at(in_order, "events_30d", later)
    )
    assert late.decayed["events_30d"][1] == T0 + 30 * DAY_MS


def test_missing_window_reads_zero():
    assert decayed_at(new_profile("x"), "revenue_180d", T0) == 0.0


def test_sessions_count_distinct_session_ids_in_any_order():
    events = [
        ev("e1", session_id="s1"),
        ev("e2", session_id="s1"),
        ev("e3", T0 + DAY_MS, session_id="s2"),
        ev("e4", T0 + DAY_MS, session_id="s2"),
        ev("e5", T0 + 5, session_id="s1"),
        ev("e6"),
    ]
    p = fold(events)
    assert session_count(p) == 2
    assert p.page_views == 6
    q = fold(list(reversed(events)))
    assert session_count(q) == 2
    assert q.session_starts == p.session_starts  # each session at its earliest event


def test_sessions_beyond_the_kept_bound_are_folded_into_the_counters():
    events = [ev(f"e{i}", T0 + i * 1000, session_id=f"s{i}") for i in range(MAX_SESSIONS + 10)]
    p = fold(events)
    assert session_count(p) == MAX_SESSIONS + 10
    assert len(p.session_starts) == MAX_SESSIONS and p.sessions == 10
    assert p.decayed["sessions_30d"][0] == pytest.approx(10.0, rel=1e-4)


def test_web_funnel_and_purchase():
    p = fold(
        [
            ev("e1", type_="add_to_cart"),
            ev("e2", type_="checkout"),
            ev("e3", T0 + 5, type_="purchase", amount=30.0),
            ev("e4", T0 + 6, type_="order_completed", amount=12.5),
        ]
    )
    assert (p.carts, p.checkouts, p.purchases) == (1, 1, 2)
    assert p.revenue == pytest.approx(42.5)
    assert p.last_purchase_ms == T0 + 6
    assert p.decayed["revenue_180d"][0] == pytest.approx(42.5)
    assert p.page_views == 0


def test_crm_purchase_counts_as_purchase_and_crm_amount():
    p = fold([ev("c1", source="crm", type_="purchase", amount=200.0, user_id="u1")])
    assert (p.purchases, p.revenue, p.crm_amount) == (1, 200.0, 200.0)
    assert p.decayed["crm_amount_180d"][0] == pytest.approx(200.0)
    assert p.decayed["revenue_180d"][0] == pytest.approx(200.0)


def test_deal_won_counts_crm_amount_but_not_purchases():
    p = fold([ev("c1", source="crm", type_="deal_won", amount=5000.0)])
    assert p.deals_won == 1
    assert p.crm_amount == 5000.0
    assert (p.purchases, p.revenue) == (0, 0.0)
    assert "revenue_180d" not in p.decayed


def test_other_crm_types():
    p = fold(
        [
            ev("c1", source="crm", type_="deal_lost", amount=300.0),
            ev("c2", source="crm", type_="consent_change", consent_marketing=True),
            ev("c3", source="crm", type_="churn"),
        ]
    )
    assert (p.deals_lost, p.crm_amount, p.consent_marketing, p.churned) == (1, 0.0, True, True)
    q = apply(p, ev("c4", source="crm", type_="consent_change", consent_marketing=False))
    assert q.consent_marketing is False
    r = apply(q, ev("c5", source="crm", type_="identify"))
    assert r.consent_marketing is False  # None does not overwrite


def test_ad_channels():
    p = fold(
        [
            ev("a1", source="ad", type_="impression", channel="meta", cost=0.02),
            ev("a2", source="ad", type_="impression", channel="meta", cost=0.02),
            ev("a3", source="ad", type_="click", channel="meta", cost=2.0),
            ev("a4", source="ad", type_="click", channel="google_ads", cost=3.0),
            ev("a5", source="ad", type_="conversion", channel="google_ads", amount=50.0),
        ]
    )
    assert p.ad_channels["meta"] == pytest.approx([2, 1, 2.04])
    assert p.ad_channels["google_ads"] == pytest.approx([0, 1, 3.0])
    assert (p.ad_impressions, p.ad_clicks, p.conversions) == (2, 2, 1)
    assert p.ad_cost == pytest.approx(5.04)
    assert p.ad_revenue == 50.0
    assert p.revenue == 0.0 and p.purchases == 0
    # only clicks (not impressions) count as a visit channel
    assert p.channels == {"meta": 1, "google_ads": 1}
    assert p.first_channel == "meta"
    assert p.decayed["ad_clicks_30d"][0] == pytest.approx(2.0)
    assert p.decayed["ad_cost_180d"][0] == pytest.approx(5.04)


def test_ad_event_without_channel_is_booked_as_unknown():
    p = fold([ev("a1", source="ad", type_="impression", cost=0.5)])
    assert p.ad_channels == {"unknown": [1, 0, 0.5]}


def test_web_channels_and_devices():
    p = fold(
        [
            ev("e1", channel="email", device_type="desktop"),
            ev("e2", channel="social", device_type="mobile"),
            ev("e3", channel="email", device_type="mobile"),
        ]
    )
    assert p.channels == {"email": 2, "social": 1}
    assert p.devices == {"desktop": 1, "mobile": 2}
    assert p.first_channel == "email"


def test_aliases_and_email_sha256():
    p = fold(
        [ev("e1", user_id="u1", email_hash="h" * 64, email_sha256="s" * 64)],
        profile=new_profile("u:u1"),
    )
    assert p.aliases == ["e:" + "h" * 64, "a:a1"]  # own key left out
    assert p.email_sha256 == "s" * 64


def test_aliases_are_bounded():
    p = fold(
        [ev(f"e{i}", anonymous_id=f"anon-{i}") for i in range(MAX_ALIASES + 10)],
        profile=new_profile("u:u1"),
    )
    assert len(p.aliases) == MAX_ALIASES


def test_event_aliases_strongest_first():
    e = Event("e", "web", "t", 0, user_id="u", anonymous_id="a", email_hash="h")
    assert event_aliases(e) == ["u:u", "e:h", "a:a"]
    assert event_aliases(Event("e", "web", "t", 0, anonymous_id="a")) == ["a:a"]


def test_profile_dict_round_trip_ignores_unknown_keys():
    p = fold([ev("e1", session_id="s", channel="email")])
    d = p.to_dict()
    assert Profile.from_dict(d) == p
    assert Profile.from_dict({**d, "from_the_future": 1}) == p


# --------------------------------------------------------------------- merge


def _two_profiles() -> tuple[Profile, Profile]:
    a = fold(
        [
            ev("a1", T0 + DAY_MS, session_id="s1", channel="email", device_type="desktop"),
            ev("a2", T0 + 2 * DAY_MS, type_="purchase", amount=10.5, session_id="s1"),
            ev("a3", T0 + 3 * DAY_MS, source="ad", type_="click", channel="meta", cost=1.5),
        ],
        profile=new_profile("u:u1"),
    )
    b = fold(
        [
            ev("b1", T0, session_id="s9", channel="social", device_type="mobile", anonymous_id="z"),
            ev(
                "b2",
                T0 + 5 * DAY_MS,
                source="crm",
                type_="deal_won",
                amount=100.25,
                anonymous_id="z",
            ),
            ev(
                "b3",
                T0 + 6 * DAY_MS,
                source="ad",
                type_="click",
                channel="meta",
                cost=2.0,
                anonymous_id="z",
            ),
        ],
        profile=new_profile("a:z"),
    )
    return a, b


COUNTERS = (
    "events",
    "late_events",
    "page_views",
    "sessions",
    "carts",
    "checkouts",
    "purchases",
    "ad_impressions",
    "ad_clicks",
    "conversions",
    "deals_won",
    "deals_lost",
    "seq",
    "first_seen_ms",
    "last_seen_ms",
    "last_purchase_ms",
)


def test_merge_is_commutative_on_counters():
    a, b = _two_profiles()
    ab, ba = merge(a, b), merge(b, a)
    for name in COUNTERS:
        assert getattr(ab, name) == getattr(ba, name), name
    for name in ("revenue", "ad_cost", "ad_revenue", "crm_amount"):
        assert getattr(ab, name) == pytest.approx(getattr(ba, name)), name
    assert ab.channels == ba.channels == {"email": 1, "social": 1, "meta": 2}
    assert ab.devices == ba.devices
    assert ab.ad_channels == ba.ad_channels
    assert ab.ad_channels["meta"] == pytest.approx([0, 2, 3.5])
    now = T0 + 10 * DAY_MS
    for name in ab.decayed:
        assert decayed_at(ab, name, now) == pytest.approx(decayed_at(ba, name, now))


def test_merge_sums_and_bounds():
    a, b = _two_profiles()
    m = merge(a, b)
    assert m.events == 6
    assert m.revenue == pytest.approx(10.5)
    assert m.crm_amount == pytest.approx(100.25)
    assert m.first_seen_ms == T0 and m.last_seen_ms == T0 + 6 * DAY_MS
    assert m.first_channel == "social"  # b was seen first
    assert m.key == "u:u1"
    assert "a:z" in m.aliases and "u:u1" not in m.aliases
    assert m.absorbed == ["a:z"]
    now = T0 + 20 * DAY_MS
    assert decayed_at(m, "events_30d", now) == pytest.approx(
        decayed_at(a, "events_30d", now) + decayed_at(b, "events_30d", now)
    )


def test_merge_is_pure_and_keeps_dedupe_ids():
    a, b = _two_profiles()
    da, db = copy.deepcopy(a.to_dict()), copy.deepcopy(b.to_dict())
    m = merge(a, b)
    assert (a.to_dict(), b.to_dict()) == (da, db)
    for eid in ("a1", "a3", "b1", "b3"):
        assert apply(m, ev(eid)) is m


def test_merge_with_an_empty_profile_changes_no_counter():
    a, _ = _two_profiles()
    m = merge(a, new_profile("a:empty"))
    for name in COUNTERS:
        if name != "seq":
            assert getattr(m, name) == getattr(a, name)
    assert m.revenue == a.revenue


def test_duplicate_of_survivor_event_after_merge_is_skipped():
    into = apply(new_profile("u:u1"), ev("login", user_id="u1"))
    other = fold(
        [ev(f"o{i}", T0 + i, anonymous_id="z") for i in range(64)], profile=new_profile("a:z")
    )
    merged = merge(into, other)
    assert apply(merged, ev("login", user_id="u1")) is merged


# ------------------------------------------------------------ feature space


def test_feature_space_rejects_unknown_names():
    with pytest.raises(ValueError, match="age"):
        feature_space(["recency_days", "age"])
    with pytest.raises(ValueError, match="gender"):
        feature_space(["gender"])


def test_feature_space_accepts_every_known_feature():
    space = feature_space(sorted(ALL_FEATURES))
    raw = space.raw(fold([ev("e1")]), T0)
    assert set(raw) == ALL_FEATURES
    assert all(math.isfinite(v) for v in raw.values())
    assert set(DEFAULT_FEATURES) <= ALL_FEATURES


def test_raw_values():
    space = feature_space(
        [
            "recency_days",
            "tenure_days",
            "pages_per_session",
            "cart_rate",
            "share_paid",
            "share_social",
            "share_email",
            "purchases",
            "frequency_30d",
        ],
        paid=["meta"],
        social=["social", "meta"],
        email=["email"],
    )
    p = fold(
        [
            ev("e1", session_id="s1", channel="email"),
            ev("e2", T0 + 1, session_id="s1", channel="email"),
            ev("e3", T0 + 2, session_id="s2", channel="social"),
            ev("e4", T0 + DAY_MS, type_="add_to_cart", session_id="s2", channel="social"),
            ev("e5", T0 + 2 * DAY_MS, source="ad", type_="click", channel="meta"),
        ]
    )
    raw = space.raw(p, T0 + 12 * DAY_MS)
    assert raw["recency_days"] == pytest.approx(10.0)
    assert raw["tenure_days"] == pytest.approx(12.0)
    assert raw["pages_per_session"] == pytest.approx(3 / 2)
    assert raw["cart_rate"] == pytest.approx(1 / 2)
    assert raw["share_paid"] == pytest.approx(1 / 5)
    assert raw["share_social"] == pytest.approx(3 / 5)
    assert raw["share_email"] == pytest.approx(2 / 5)
    assert raw["purchases"] == 0.0


def test_raw_of_an_empty_profile_is_zero():
    space = feature_space(DEFAULT_FEATURES)
    assert set(space.raw(new_profile("x"), T0).values()) == {0.0}


def test_transform_and_readable_are_inverse():
    space = feature_space(DEFAULT_FEATURES, paid=["meta"])
    p = fold(
        [
            ev("e1", type_="purchase", amount=99.0, session_id="s"),
            ev("e2", T0 + DAY_MS, source="ad", type_="click", channel="meta", cost=4.0),
        ]
    )
    raw = space.raw(p, T0 + 3 * DAY_MS)
    x = space.vector(p, T0 + 3 * DAY_MS)
    assert x["monetary_180d"] == pytest.approx(math.log1p(raw["monetary_180d"]))
    assert x["share_paid"] == raw["share_paid"]  # shares are not logged
    back = space.readable(x)
    assert back == pytest.approx(raw)


def test_unknown_feature_in_a_hand_built_space_raises():
    from segstream.models.features import FeatureSpace

    space = FeatureSpace(("nope",), frozenset(), frozenset(), frozenset())
    with pytest.raises(KeyError):
        space.raw(new_profile("x"), T0)


_AGE_PROFILE = fold(
    [
        ev("e1", session_id="s1", channel="email"),
        ev("e2", T0 + DAY_MS, type_="purchase", amount=120.0, session_id="s2"),
        ev("e3", T0 + 2 * DAY_MS, source="ad", type_="click", channel="meta", cost=3.0),
        ev("e4", T0 + 3 * DAY_MS, source="crm", type_="deal_won", amount=700.0),
        ev("e5", T0 + 4 * DAY_MS, session_id="s3"),
    ]
)
_AGE_SPACE = feature_space(sorted(ALL_FEATURES), paid=["meta"], email=["email"])


@settings(database=None, max_examples=80, deadline=None)
@given(start=st.integers(0, 90 * DAY_MS), elapsed=st.integers(0, 400 * DAY_MS))
def test_age_matches_raw_at_a_later_time(start, elapsed):
    now0 = _AGE_PROFILE.last_seen_ms + start
    raw0 = _AGE_SPACE.raw(_AGE_PROFILE, now0)
    aged = _AGE_SPACE.age(raw0, elapsed)
    later = _AGE_SPACE.raw(_AGE_PROFILE, now0 + elapsed)
    assert aged.keys() == later.keys()
    for name in later:
        assert aged[name] == pytest.approx(later[name], rel=1e-9, abs=1e-12), name


def test_age_of_zero_or_negative_elapsed_is_identity():
    raw = _AGE_SPACE.raw(_AGE_PROFILE, _AGE_PROFILE.last_seen_ms)
    assert _AGE_SPACE.age(raw, 0) == raw
    assert _AGE_SPACE.age(raw, -DAY_MS) == raw


# -------------------------------------------------------- property: replays

_SESSIONS = ["s1", "s2", "s3"]
_CHANNELS = [None, "email", "social", "meta", "google_ads"]


@st.composite
def _event(draw, eid: str) -> Event:
    source = draw(st.sampled_from(["web", "ad", "crm"]))
    types = {
        "web": ["page_view", "add_to_cart", "checkout", "purchase", "order"],
        "ad": ["impression", "click", "conversion"],
        "crm": ["purchase", "deal_won", "deal_lost", "identify", "churn"],
    }[source]
    ts = T0 + draw(st.integers(0, 200 * DAY_MS))
    amount = draw(st.floats(0, 1000, allow_nan=False, allow_infinity=False))
    return Event(
        eid,
        source,
        draw(st.sampled_from(types)),
        ts,
        anonymous_id="a1",
        session_id=draw(st.sampled_from(_SESSIONS)) if source == "web" else None,
        channel=draw(st.sampled_from(_CHANNELS)),
        device_type=draw(st.sampled_from([None, "mobile", "desktop"])),
        amount=amount,
        cost=draw(st.floats(0, 10, allow_nan=False)) if source == "ad" else 0.0,
        consent_marketing=draw(st.sampled_from([None, True, False])),
    )


@st.composite
def _events(draw, max_size: int = 30) -> list[Event]:
    n = draw(st.integers(1, max_size))
    return [draw(_event(f"evt-{i}")) for i in range(n)]


@settings(database=None, max_examples=60, deadline=None)
@given(events=_events(), data=st.data())
def test_reapplying_any_subset_changes_nothing(events, data):
    p = fold(events)
    snapshot = p.to_dict()
    dups = data.draw(st.lists(st.sampled_from(events), max_size=40))
    q = fold(dups, profile=p)
    assert q is p
    assert q.to_dict() == snapshot


@settings(database=None, max_examples=60, deadline=None)
@given(events=_events(), seed=st.integers(0, 2**32 - 1))
def test_order_does_not_change_counters(events, seed):
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    a, b = fold(events), fold(shuffled)
    for name in (
        "events",
        "purchases",
        "first_seen_ms",
        "last_seen_ms",
        "last_purchase_ms",
        "page_views",
        "carts",
        "ad_clicks",
        "deals_won",
        "deals_lost",
    ):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("revenue", "crm_amount", "ad_cost"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-9, abs=1e-9)
    assert a.channels == b.channels and a.devices == b.devices
    later = T0 + 250 * DAY_MS
    for name in ("events_30d", "revenue_180d", "crm_amount_180d", "ad_cost_180d"):
        assert decayed_at(a, name, later) == pytest.approx(
            decayed_at(b, name, later), rel=1e-9, abs=1e-12
        ), name


@settings(database=None, max_examples=40, deadline=None)
@given(events=_events(max_size=20), cut=st.integers(0, 20))
def test_merging_two_halves_equals_applying_all(events, cut):
    left, right = events[:cut], events[cut:]
    whole = fold(events)
    m = merge(fold(left, profile=new_profile("a:a1")), fold(right, profile=new_profile("a:b")))
    for name in (
        "events",
        "purchases",
        "page_views",
        "ad_clicks",
        "deals_won",
        "first_seen_ms",
        "last_seen_ms",
        "last_purchase_ms",
    ):
        assert getattr(m, name) == getattr(whole, name), name
    assert m.revenue == pytest.approx(whole.revenue, rel=1e-9, abs=1e-9)
    later = T0 + 250 * DAY_MS
    assert decayed_at(m, "events_30d", later) == pytest.approx(
        decayed_at(whole, "events_30d", later), rel=1e-9
    )


@settings(database=None, max_examples=60, deadline=None)
@given(events=_events(max_size=40), data=st.data())
def test_folding_into_one_working_copy_equals_applying_one_by_one(events, data):
    """The batch step's way (one copy per user per batch, then ``fold`` in place) gives
    exactly the state of the pure ``apply`` per event, copies included, and leaves the
    state it copied from untouched."""
    events = events + data.draw(st.lists(st.sampled_from(events), max_size=10))  # copies
    start = fold(events[:3])
    before = copy.deepcopy(start.to_dict())
    working = working_copy(start)
    for i, e in enumerate(events[3:]):
        if not applied(working, e, "3", 100 + i):
            features_fold(working, e, offset_key="3", offset=100 + i)
    pure_with_offsets = start
    for i, e in enumerate(events[3:]):
        pure_with_offsets = apply(pure_with_offsets, e, offset_key="3", offset=100 + i)
    assert working.to_dict() == pure_with_offsets.to_dict()
    assert start.to_dict() == before


def test_evolve_is_replace_without_its_cost():
    p = Profile("u:1", events=3, channels={"web": 2}, recent=[1, 2], segment=4)
    q = evolve(p, segment=5, segment_version=2)
    assert q == dataclasses.replace(p, segment=5, segment_version=2)
    assert q is not p and (p.segment, p.segment_version) == (4, 0)  # the original stays
    assert q.channels is p.channels  # shallow, as replace: containers are shared
    with pytest.raises(AttributeError):
        evolve(p, segmnet=5)  # a misspelt field is refused, not added
