"""consumers/redis_view.py: the pure helpers (score encoding, key names); no Redis needed."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.consumers.redis_view import Keys, format_scores, parse_scores
from segstream.schemas.settings import Settings

scores_dicts = st.dictionaries(
    st.integers(min_value=0, max_value=999),
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False).map(lambda v: round(v, 3)),
    max_size=64,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SEGSTREAM_"):
            monkeypatch.delenv(name)


@settings(database=None, max_examples=200, deadline=None)
@given(scores_dicts)
def test_scores_round_trip(scores):
    text = format_scores(scores)
    back = parse_scores(text)
    assert back == scores
    assert all(type(k) is int for k in back)


@settings(database=None, max_examples=100, deadline=None)
@given(scores_dicts)
def test_format_does_not_depend_on_insertion_order(scores):
    assert format_scores(dict(reversed(list(scores.items())))) == format_scores(scores)


@settings(database=None, max_examples=100, deadline=None)
@given(scores_dicts)
def test_formatted_scores_are_compact_text(scores):
    text = format_scores(scores)
    assert " " not in text
    assert text.count(",") == max(len(scores) - 1, 0)


def test_empty_scores():
    assert format_scores({}) == ""
    assert parse_scores("") == {}


def test_scores_of_an_assignment_round_trip():
    scores = {0: 0.123, 3: 0.877, 17: 0.0, 250: 1.0}
    assert parse_scores(format_scores(scores)) == scores


def test_parse_ignores_empty_parts():
    assert parse_scores("1:0.5,,2:0.5,") == {1: 0.5, 2: 0.5}


def test_parse_rejects_garbage():
    with pytest.raises(ValueError):
        parse_scores("one:0.5")


# ---------------------------------------------------------------------- Keys


def test_keys_live_under_the_namespace():
    keys = Keys(Settings(namespace="shop-eu"))
    prefix = "seg:shop-eu:"
    assert keys.user("u:cust-1") == prefix + "user:u:cust-1"
    assert keys.features("a:anon-9") == prefix + "features:a:anon-9"
    assert keys.members(3) == prefix + "members:3"
    assert keys.members("3") == keys.members(3)
    assert keys.segments == prefix + "segments"
    assert keys.model == prefix + "model"


def test_key_prefixes_compose_with_profiles():
    keys = Keys(Settings(namespace="ns1"))
    assert keys.user("u:x") == keys.user_prefix + "u:x"
    assert keys.features("u:x") == keys.features_prefix + "u:x"
    assert keys.members(8) == keys.members_prefix + "8"


def test_every_key_starts_with_seg_so_the_api_acl_covers_it():
    keys = Keys(Settings(namespace="acl"))
    names = [keys.user("p"), keys.features("p"), keys.members(1), keys.segments, keys.model]
    assert all(n.startswith("seg:acl:") for n in names)
    assert len(set(names)) == len(names)


def test_namespaces_do_not_share_keys():
    a, b = Keys(Settings(namespace="a")), Keys(Settings(namespace="ab"))
    names_a = {a.user("p"), a.features("p"), a.members(1), a.segments, a.model}
    names_b = {b.user("p"), b.features("p"), b.members(1), b.segments, b.model}
    assert names_a.isdisjoint(names_b)
    # a scan for one namespace's keys never matches the other's
    assert not any(n.startswith("seg:a:") for n in names_b)


def test_user_and_features_of_different_profiles_differ():
    keys = Keys(Settings(namespace="n"))
    assert keys.user("u:1") != keys.user("a:1")
    assert keys.user("u:1") != keys.features("u:1")
