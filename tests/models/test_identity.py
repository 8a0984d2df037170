"""models/identity.py: route / resolve / link decisions for identity stitching."""

from __future__ import annotations

import pytest

from segstream.models.identity import LinkResult, Out, SentLinks, link, rank, resolve, route
from segstream.schemas.events import Event

H = "ab" * 32  # an email hash


def event(**ids) -> Event:
    return Event("e1", "web", "page_view", 1_000, **ids)


def test_rank_order():
    assert rank("u:1") > rank("e:" + H) > rank("a:x")


# -------------------------------------------------------------------- route


def test_route_customer_event_goes_straight_to_the_customer_and_links_the_rest():
    e = event(user_id="c1", email_hash=H, anonymous_id="anon")
    outs = route(e)
    assert outs[0] == Out("events", "u:c1", {"k": "event", "e": e.to_dict()})
    assert outs[1:] == [
        Out("identity", "e:" + H, {"k": "link", "to": "u:c1"}),
        Out("identity", "a:anon", {"k": "link", "to": "u:c1"}),
    ]


def test_route_customer_event_without_other_ids_sends_no_link():
    assert [o.topic for o in route(event(user_id="c1"))] == ["events"]


@pytest.mark.parametrize(
    ("ids", "alias"),
    [
        ({"anonymous_id": "anon"}, "a:anon"),
        ({"email_hash": H}, "e:" + H),
        ({"email_hash": H, "anonymous_id": "anon"}, "e:" + H),
    ],
)
def test_route_other_events_go_to_the_partition_of_their_strongest_alias(ids, alias):
    e = event(**ids)
    assert route(e) == [Out("identity", alias, {"k": "event", "e": e.to_dict()})]


# ------------------------------------------------------------------ resolve


def test_resolve_unlinked_alias_is_its_own_profile():
    e = event(anonymous_id="anon").to_dict()
    assert resolve(None, "a:anon", e) == [Out("events", "a:anon", {"k": "event", "e": e})]


def test_resolve_linked_alias_goes_through_its_own_merged_profile():
    # the alias's merged profile forwards it to u:c1 behind the absorb of its state, so a
    # copy of an event can never overtake the state that already counted the original
    e = event(anonymous_id="anon").to_dict()
    assert resolve("u:c1", "a:anon", e) == [Out("events", "a:anon", {"k": "event", "e": e})]


def test_resolve_links_weaker_aliases_to_the_result():
    e = event(email_hash=H, anonymous_id="anon").to_dict()
    assert resolve(None, "e:" + H, e) == [
        Out("events", "e:" + H, {"k": "event", "e": e}),
        Out("identity", "a:anon", {"k": "link", "to": "e:" + H}),
    ]
    outs = resolve("u:c1", "e:" + H, e)
    assert outs[0].key == "e:" + H
    assert outs[1] == Out("identity", "a:anon", {"k": "link", "to": "u:c1"})


def test_resolve_does_not_mutate_the_event_dict():
    e = event(email_hash=H, anonymous_id="anon").to_dict()
    before = dict(e)
    resolve(None, "e:" + H, e)
    assert e == before


# --------------------------------------------------------------------- link


def test_first_link_is_kept_and_merges_the_provisional_profile():
    res = link(None, "a:anon", "u:c1")
    assert res == LinkResult("u:c1", [Out("events", "a:anon", {"k": "merge", "into": "u:c1"})])
    assert not res.conflict


def test_repeated_link_is_idempotent():
    res = link("u:c1", "a:anon", "u:c1")
    assert res.entry is None and res.outs == [] and not res.conflict


def test_link_to_itself_is_ignored():
    res = link(None, "e:" + H, "e:" + H)
    assert res.entry is None and res.outs == []


def test_rank_upgrade_email_profile_to_customer():
    # a:anon was linked to the email profile; now it shows up logged in as c1
    res = link("e:" + H, "a:anon", "u:c1")
    assert res.entry == "u:c1"
    assert res.outs == [Out("events", "e:" + H, {"k": "merge", "into": "u:c1"})]
    assert not res.conflict


def test_weaker_link_does_not_replace_a_stronger_one():
    res = link("u:c1", "a:anon", "e:" + H)
    assert res.entry is None and res.outs == [] and not res.conflict


def test_conflict_between_two_customers_keeps_the_first():
    res = link("u:c1", "a:shared-device", "u:c2")
    assert res.entry is None  # table unchanged: still u:c1
    assert res.outs == []
    assert res.conflict


def test_conflict_between_two_email_profiles_is_flagged():
    res = link("e:" + H, "a:anon", "e:" + "cd" * 32)
    assert res.conflict and res.entry is None


def _apply_links(table: dict[str, str], links: list[tuple[str, str]]) -> list[Out]:
    outs: list[Out] = []
    for alias, to in links:
        res = link(table.get(alias), alias, to)
        if res.entry is not None:
            table[alias] = res.entry
        outs += res.outs
    return outs


def test_link_sequence_replayed_changes_nothing():
    links = [
        ("a:anon", "e:" + H),
        ("a:anon", "u:c1"),
        ("e:" + H, "u:c1"),
        ("a:anon", "u:c2"),
        ("a:anon", "e:" + H),
    ]
    table: dict[str, str] = {}
    outs = _apply_links(table, links)
    assert table == {"a:anon": "u:c1", "e:" + H: "u:c1"}
    assert [(o.key, o.value["into"]) for o in outs] == [
        ("a:anon", "e:" + H),
        ("e:" + H, "u:c1"),
        ("e:" + H, "u:c1"),
    ]
    again = _apply_links(table, links)
    assert again == []
    assert table == {"a:anon": "u:c1", "e:" + H: "u:c1"}


def test_sent_links_drop_repeats_only_once_the_broker_holds_them() -> None:
    e = event(user_id="c1", anonymous_id="anon")
    links = SentLinks()
    first = links.fresh(route(e))
    assert first == route(e)  # nothing sent yet: all kept
    assert links.fresh(route(e)) == route(e)  # not remembered until sent
    links.remember(first)
    again = links.fresh(route(e))
    assert again == [route(e)[0]]  # the event stays, first; its link goes
    other = links.fresh(route(event(user_id="c2", anonymous_id="anon")))
    assert [o.value.get("to") for o in other if o.topic == "identity"] == ["u:c2"]


def test_sent_links_forget_the_least_recently_sent_beyond_capacity() -> None:
    links = SentLinks(capacity=2)
    outs = [Out("identity", f"a:{i}", {"k": "link", "to": "u:x"}) for i in range(3)]
    links.remember(outs[:2])
    assert links.fresh([outs[0]]) == []  # a:0 is now the most recently used
    links.remember([outs[2]])  # a:1 goes
    assert links.fresh(outs) == [outs[1]]
