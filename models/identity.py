"""Identity stitching: which profile an event belongs to, decided one partition at a time.

Identifiers become typed aliases: ``u:<user_id>``, ``e:<email hash>``,
``a:<anonymous id>``; a higher rank wins (user id > email > anonymous id).

The rule:

1. An event with a ``user_id`` belongs to profile ``u:<user_id>``; its other
   aliases are *linked* to that profile.
2. Any other event goes to the partition that owns its strongest alias, and on
   to that alias's own profile. Once the alias is linked, that profile has been
   merged and forwards the event to the linked one, along the same path as the
   merge's state: so a copy of an event can never reach the customer before the
   state that already counted the original (the ordering duplicates rely on).
   A weaker alias on the same event is linked to the alias's profile.
3. A link ``alias → profile`` is kept when the alias had no link yet, or when
   the new profile ranks higher than the old one (an email profile becoming a
   customer). The profile the alias had so far is then *merged* into the new
   one, so history from before the link is kept.
4. A link between two different customers (one anonymous id seen logged in as
   two user ids, e.g. a shared device) keeps the first; the conflict is
   counted, never silently re-assigned.

Limits: links are never undone (a wrong link needs ``segstream erase`` and a
replay); an alias's events that arrive before its link land in the provisional
profile and join the customer only when the merge is processed, a moment later.

Every decision is a pure function returning the new table value and the records
to send (``Out``); the Faust agents only apply them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from segstream.models.features import aliases_of, event_aliases
from segstream.schemas.events import Event

RANK = {"u": 3, "e": 2, "a": 1}


@dataclass(frozen=True, slots=True)
class Out:
    """A record to send: internal topic (``identity`` or ``events``), key and value."""

    topic: str
    key: str
    value: dict[str, Any]


def rank(alias: str) -> int:
    return RANK[alias[0]]


def route(event: Event) -> list[Out]:
    """First hop, at the edge: where a freshly validated event goes next."""
    aliases = event_aliases(event)
    body = {"k": "event", "e": event.to_dict()}
    if aliases[0].startswith("u:"):
        profile = aliases[0]
        return [Out("events", profile, body)] + [
            Out("identity", a, {"k": "link", "to": profile}) for a in aliases[1:]
        ]
    return [Out("identity", aliases[0], body)]


def resolve(entry: str | None, alias: str, event: dict[str, Any]) -> list[Out]:
    """An event arriving at the partition of its strongest alias ``alias``."""
    profile = entry or alias
    outs = [Out("events", alias, {"k": "event", "e": event})]  # forwarded once merged
    ids = aliases_of(event.get("user_id"), event.get("email_hash"), event.get("anonymous_id"))
    for weaker in ids:
        if weaker != alias and rank(weaker) < rank(alias):
            outs.append(Out("identity", weaker, {"k": "link", "to": profile}))
    return outs


@dataclass(frozen=True, slots=True)
class LinkResult:
    entry: str | None  # new table value for the alias (None: unchanged)
    outs: list[Out]
    conflict: bool = False


def link(entry: str | None, alias: str, to: str) -> LinkResult:
    """A link ``alias → to`` arriving at the partition of ``alias``."""
    if to == alias or entry == to:
        return LinkResult(None, [])
    current = entry or alias
    if entry is not None and rank(to) <= rank(entry):
        return LinkResult(None, [], conflict=rank(to) == rank(entry))
    merge = Out("events", current, {"k": "merge", "into": to})
    return LinkResult(to, [merge])


class SentLinks:
    """The links this process has already sent (and the broker holds), most recent last.

    Sending the same link again never changes anything: it arrives at the alias's
    partition, which either holds it already or holds a link that ranks at least as
    high (links only ever move up). A logged-in customer's every event would otherwise
    send one link per weaker alias; this drops the repeats. Bounded: the least recently
    sent are forgotten, and then merely sent once more.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.sent: OrderedDict[tuple[str, str], None] = OrderedDict()

    def fresh(self, outs: list[Out]) -> list[Out]:
        """``outs`` without the links already sent; the rest unchanged."""
        kept = []
        for out in outs:
            if out.topic == "identity" and out.value.get("k") == "link":
                pair = (out.key, out.value["to"])
                if pair in self.sent:
                    self.sent.move_to_end(pair)
                    continue
            kept.append(out)
        return kept

    def remember(self, outs: Iterable[Out]) -> None:
        """Call once the broker holds ``outs``: their links need not be sent again."""
        for out in outs:
            if out.topic == "identity" and out.value.get("k") == "link":
                self.sent[(out.key, out.value["to"])] = None
        while len(self.sent) > self.capacity:
            self.sent.popitem(last=False)
