"""models/erasure.py and the ``erase``/``linked`` kinds of models/profiles.py, run through
a small in-memory copy of the three stages (the real topics carry the same records)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from segstream.models import erasure
from segstream.models.features import Profile
from segstream.models.identity import Out, link, resolve, route
from segstream.models.profiles import handle
from segstream.schemas.events import Event
from segstream.schemas.privacy import email_hash
from segstream.schemas.records import Erasure

KEY = b"k" * 32
H = email_hash("Ada@Example.com", KEY)


@dataclass
class World:
    """Tables, suppression list and what was sent to ``erasures``, as the worker has them."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)
    erasures: list[str] = field(default_factory=list)
    suppressed: int = 0
    steps: int = 0

    def run(self, outs: list[Out]) -> None:
        queue = deque(outs)
        while queue:
            self.steps += 1
            assert self.steps < 10_000, "the cascade does not end"
            out = queue.popleft()
            value: dict[str, Any] = orjson.loads(orjson.dumps(out.value))
            if out.topic == "erasures":
                self.erasures.append(out.key)
                e = Erasure(out.key, value["requested_ms"], via=value["via"])
                self.erased.add(e.alias)
                queue.append(erasure.dispatch(e))
                continue
            if erasure.suppressed(value, out.key, self.erased):
                self.suppressed += 1
                continue
            if out.topic == "identity":
                entry = self.aliases.get(out.key)
                if value["k"] == "erase":
                    queue.extend(erasure.at_identity(entry, out.key, value))
                    self.erased.add(out.key)
                    self.aliases.pop(out.key, None)
                elif value["k"] == "event":
                    queue.extend(resolve(entry, out.key, value["e"]))
                else:
                    res = link(entry, out.key, value["to"])
                    if res.entry is not None:
                        self.aliases[out.key] = res.entry
                    queue.extend(res.outs)
                continue
            step = handle(self.profiles.get(out.key), out.key, value)
            queue.extend(step.outs)
            if step.erased:
                self.erased.add(out.key)
                self.profiles.pop(out.key, None)
            elif step.state is not None:
                self.profiles[out.key] = step.state

    def event(self, n: int, **ids: str) -> None:
        self.run(route(Event(f"e{n}", "web", "page_view", 1_000 + n, **ids)))

    def erase(self, alias: str) -> None:
        self.erased.add(alias)
        self.run([erasure.dispatch(Erasure(alias, 5_000))])

    def live(self) -> set[str]:
        return {k for k, p in self.profiles.items() if not p.merged_into}


def customer(w: World) -> None:
    """Ada browses anonymously, logs in (user id, email, device), and a stranger browses."""
    w.event(1, anonymous_id="dev1")
    w.event(2, anonymous_id="dev1")
    w.event(3, user_id="ada", email_hash=H, anonymous_id="dev1")
    w.event(4, anonymous_id="dev1")  # after the link: forwarded to u:ada
    w.event(5, anonymous_id="other")


def test_the_world_is_what_stitching_makes_before_any_erasure() -> None:
    w = World()
    customer(w)
    assert w.live() == {"u:ada", "a:other"}
    assert w.profiles["u:ada"].events == 4
    assert set(w.profiles["u:ada"].absorbed) == {"a:dev1", "e:" + H}  # e: only via ``linked``
    assert w.aliases == {"a:dev1": "u:ada", "e:" + H: "u:ada"}


@pytest.mark.parametrize("alias", ["u:ada", "a:dev1", "e:" + H])
def test_erasing_any_alias_forgets_the_whole_person_and_nobody_else(alias: str) -> None:
    w = World()
    customer(w)
    w.erase(alias)
    assert set(w.profiles) == {"a:other"}  # the survivor and both merged markers are gone
    assert w.aliases == {}
    assert {"u:ada", "a:dev1", "e:" + H} <= w.erased
    assert set(w.erasures) | {alias} >= {"u:ada", "a:dev1", "e:" + H}


def test_later_events_of_every_alias_of_an_erased_person_are_dropped() -> None:
    w = World()
    customer(w)
    w.erase("u:ada")
    before = w.suppressed
    w.event(6, anonymous_id="dev1")
    w.event(7, email_hash=H)
    w.event(8, user_id="ada")
    w.event(9, anonymous_id="other")
    assert set(w.profiles) == {"a:other"}
    assert w.profiles["a:other"].events == 2
    assert w.suppressed == before + 3


def test_a_link_from_a_new_customer_to_an_erased_alias_is_dropped() -> None:
    w = World()
    customer(w)
    w.erase("u:ada")
    w.event(10, user_id="bob", anonymous_id="dev1")  # a shared device, after the erasure
    assert w.profiles["u:bob"].events == 1
    assert "a:dev1" not in w.aliases  # the erased device is not linked again


def test_erasing_twice_or_an_unknown_person_changes_nothing_more() -> None:
    w = World()
    customer(w)
    w.erase("u:ada")
    profiles, aliases = dict(w.profiles), dict(w.aliases)
    w.erase("u:ada")
    w.erase("u:nobody")
    assert w.profiles == profiles and w.aliases == aliases


def test_erase_command_passes_suppression_and_links_to_erased_do_not() -> None:
    erased = {"u:ada"}
    assert not erasure.suppressed(erasure.command("u:ada", 1), "u:ada", erased)
    assert erasure.suppressed({"k": "event", "e": {}}, "u:ada", erased)
    assert erasure.suppressed({"k": "link", "to": "u:ada"}, "a:x", erased)
    assert erasure.suppressed({"k": "merge", "into": "u:ada"}, "a:x", erased)
    assert not erasure.suppressed({"k": "link", "to": "u:bob"}, "a:x", erased)


def test_linked_records_the_alias_once() -> None:
    first = handle(None, "u:ada", {"k": "linked", "from": "a:dev"})
    assert first.state is not None and first.state.absorbed == ["a:dev"]
    assert first.state.events == 0  # no behaviour: not segmented until an event comes
    again = handle(first.state, "u:ada", {"k": "linked", "from": "a:dev"})
    assert again.state is None and again.outs == []


def test_subject_hashes_an_email_as_the_edge_does_and_wants_one_identifier() -> None:
    assert erasure.subject(user_id="ada") == "u:ada"
    assert erasure.subject(anonymous_id="dev1") == "a:dev1"
    alias = erasure.subject(email=" ADA@example.com", email_key=KEY)
    assert alias == "e:" + H and "example" not in alias
    with pytest.raises(ValueError, match="exactly one"):
        erasure.subject(user_id="ada", anonymous_id="dev1")
    with pytest.raises(ValueError, match="exactly one"):
        erasure.subject()
    with pytest.raises(ValueError, match="not an email"):
        erasure.subject(email="ada", email_key=KEY)
