"""models/naming.py: segment names from the strongest z-score deviations, and profiles."""

from __future__ import annotations

import math

import pytest

from segstream.models.features import feature_space
from segstream.models.naming import THRESHOLD, WORDS, describe, name_for, profiles
from segstream.models.segments import Segment, Snapshot

SEP = " · "


def snapshot(features: tuple[str, ...], *centroids: tuple[float, ...]) -> Snapshot:
    n = len(features)
    segments = tuple(Segment(i, c, round(1 / len(centroids), 4)) for i, c in enumerate(centroids))
    return Snapshot(3, features, (0.0,) * n, (1.0,) * n, segments, len(centroids), 0, 100)


def named(features: tuple[str, ...], centroid: tuple[float, ...]) -> str:
    snap = snapshot(features, centroid)
    return name_for(snap.segments[0], snap)


def high(feature: str) -> str:
    return WORDS[feature][0]


def low(feature: str) -> str:
    return WORDS[feature][1]


def test_documented_example():
    snap = Snapshot(
        1,
        ("monetary_180d", "recency_days"),
        (0.0, 0.0),
        (1.0, 1.0),
        (Segment(0, (2.0, -1.2), 0.4),),
        1,
        0,
        10,
    )
    assert name_for(snap.segments[0], snap) == "High spenders · Recently active"


def test_two_strongest_deviations_name_the_segment_strongest_first():
    features = ("purchases", "recency_days", "cart_rate", "share_paid")
    # |z| ranks: recency (2.5, low) > cart_rate (1.0, high) > share_paid (0.7) > purchases (0.3)
    name = named(features, (0.3, -2.5, 1.0, 0.7))
    assert name == low("recency_days") + SEP + high("cart_rate")


def test_a_negative_deviation_outranks_a_weaker_positive_one():
    name = named(("monetary_180d", "frequency_30d"), (0.9, -1.8))
    assert name.split(SEP) == [low("frequency_30d"), high("monetary_180d")]


def test_at_most_two_words_even_when_every_feature_deviates():
    features = tuple(WORDS)
    centroid = tuple(3.0 - 0.1 * i for i in range(len(features)))
    words = named(features, centroid).split(SEP)
    assert words == [high(features[0]), high(features[1])]


def test_single_strong_deviation_gives_a_single_word():
    name = named(("purchases", "share_email", "cart_rate"), (0.1, -0.9, 0.2))
    assert name == low("share_email")
    assert SEP not in name


@pytest.mark.parametrize(
    "centroid",
    [(0.0, 0.0, 0.0), (0.49, -0.49, 0.2), (-0.3, 0.3, 0.0)],
)
def test_typical_customers_when_nothing_deviates_enough(centroid):
    assert named(("purchases", "cart_rate", "share_paid"), centroid) == "Typical customers"


def test_threshold_is_inclusive_in_both_directions():
    assert named(("purchases",), (THRESHOLD,)) == high("purchases")
    assert named(("purchases",), (-THRESHOLD,)) == low("purchases")
    assert named(("purchases",), (math.nextafter(THRESHOLD, 0),)) == "Typical customers"


def test_weak_feature_is_not_named_even_when_only_one_strong_one_exists():
    name = named(("ad_clicks_30d", "share_social"), (-1.5, 0.4))
    assert name == low("ad_clicks_30d")


def test_feature_without_words_gets_a_generic_name():
    name = named(("mystery", "purchases"), (-2.0, 1.0))
    assert name.split(SEP) == ["Low mystery", high("purchases")]
    assert named(("mystery",), (0.8,)) == "High mystery"


def test_every_word_pair_is_distinct_per_direction():
    for feature, (when_high, when_low) in WORDS.items():
        assert when_high != when_low, feature
        assert named((feature,), (1.0,)) == when_high
        assert named((feature,), (-1.0,)) == when_low


# ------------------------------------------------------------------ profiles

FEATURES = ("monetary_180d", "share_paid", "recency_days")
MEAN = (math.log1p(100.0), 0.25, math.log1p(7.0))
STD = (1.0, 0.1, 0.5)
SNAP = Snapshot(
    version=9,
    features=FEATURES,
    mean=MEAN,
    std=STD,
    segments=(
        Segment(2, (0.0, 0.0, 0.0), 0.55),
        Segment(5, (1.234567, 2.0, -1.0), 0.45),
    ),
    next_id=6,
    created_ms=1_767_225_600_000,
    n_seen=5000,
)
SPACE = feature_space(FEATURES, paid=("google_ads",))


def test_profiles_has_one_entry_per_segment_keyed_by_public_id():
    out = profiles(SNAP, SPACE)
    assert set(out) == {2, 5}
    for sid, prof in out.items():
        assert prof["id"] == sid
        assert prof["version"] == SNAP.version
        assert prof["share"] == SNAP.segment(sid).share
        assert prof["name"] == name_for(SNAP.segment(sid), SNAP)
        assert set(prof["centroid"]) == set(FEATURES)
        assert set(prof["z"]) == set(FEATURES)


def test_population_centre_reads_back_as_the_population_in_plain_units():
    centre = profiles(SNAP, SPACE)[2]
    # log features come back through expm1: the mean log-spend is a spend of 100
    assert centre["centroid"]["monetary_180d"] == pytest.approx(100.0, abs=1e-3)
    assert centre["centroid"]["recency_days"] == pytest.approx(7.0, abs=1e-3)
    # shares are not logged: they read back as they are
    assert centre["centroid"]["share_paid"] == pytest.approx(0.25, abs=1e-3)
    assert centre["name"] == "Typical customers"
    assert centre["z"] == {f: 0.0 for f in FEATURES}


def test_deviating_segment_centroid_in_plain_units_and_rounded_z():
    prof = profiles(SNAP, SPACE)[5]
    # z = +1.234567 std on log1p(spend): spend = 101 * e^1.234567 - 1
    assert prof["centroid"]["monetary_180d"] == pytest.approx(
        101.0 * math.exp(1.234567) - 1.0, abs=1e-3
    )
    assert prof["centroid"]["share_paid"] == pytest.approx(0.25 + 2.0 * 0.1, abs=1e-3)
    # recency: z = -1 with std 0.5 is -0.5 in log1p(days): 8 / sqrt(e) - 1 days
    assert prof["centroid"]["recency_days"] == pytest.approx(
        8.0 / math.sqrt(math.e) - 1.0, abs=1e-3
    )
    assert prof["z"] == {"monetary_180d": 1.23, "share_paid": 2.0, "recency_days": -1.0}
    assert prof["name"] == high("share_paid") + SEP + high("monetary_180d")


def test_profile_values_are_rounded_for_people():
    prof = profiles(SNAP, SPACE)[5]
    for v in prof["centroid"].values():
        assert v == round(v, 3)
    for v in prof["z"].values():
        assert v == round(v, 2)


def test_profiles_of_a_snapshot_without_segments_is_empty():
    empty = Snapshot(1, FEATURES, MEAN, STD, (), 0, 0, 0)
    assert profiles(empty, SPACE) == {}


def _snap_two_alike() -> Snapshot:
    # two segments high on the same feature; what tells them apart is the second one
    return Snapshot(
        1,
        ("monetary_180d", "crm_amount_180d", "recency_days"),
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
        (
            Segment(0, (2.0, 1.8, 0.0), 0.3),
            Segment(1, (2.1, -1.5, 0.0), 0.3),
            Segment(2, (-1.0, 0.0, 2.0), 0.4),
        ),
        3,
        0,
        100,
    )


def test_names_lead_with_what_sets_a_segment_apart_from_its_nearest_one():
    snap = _snap_two_alike()
    out = profiles(snap, feature_space(snap.features))
    assert out[0]["name"].startswith("Big-ticket accounts")  # crm sets it apart, not spend
    assert out[1]["name"].startswith("No CRM revenue")
    assert len({p["name"] for p in out.values()}) == len(out)


def test_name_for_avoids_a_name_already_taken():
    snap = _snap_two_alike()
    first = name_for(snap.segments[0], snap)
    second = name_for(snap.segments[0], snap, taken={first})
    assert second != first and second.split(" · ")[0] == first.split(" · ")[0]


def test_description_is_two_sentences_naming_the_share_and_the_traits():
    snap = _snap_two_alike()
    text = describe(snap.segments[2], snap, feature_space(snap.features))
    assert text.count(". ") == 1 and text.endswith(".")
    assert text.startswith("About 40% of users")
    assert "lapsed" in text and "low spend" in text
    typical = Snapshot(1, ("recency_days",), (0.0,), (1.0,), (Segment(0, (0.1,), 1.0),), 1, 0, 1)
    assert "average user" in describe(typical.segments[0], typical, feature_space(typical.features))
