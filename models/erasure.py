"""Erasure: forgetting a person on request, decided one stage at a time. Pure.

``segstream erase`` writes an ``Erasure`` for one alias to the compacted ``erasures``
topic, which is also the suppression list every worker holds. From there:

1. the ``erasures`` agent sends an ``erase`` command to the alias's identity partition
   (``dispatch``);
2. the identity stage drops the alias's link and sends the command on to the profile
   the alias belongs to, and to the alias's own profile when it was merged away
   (``at_identity``);
3. the profile stage deletes the profile and forwards the command to the customer it
   was merged into, and down to every profile merged into it (``at_profile``). Every
   alias found on the way is written to ``erasures`` too, so its later events are
   suppressed and its own link is dropped.

Each step is idempotent: a command for a profile already gone finds no state and sends
nothing more, so the cascade ends, and a replay changes nothing.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from segstream.models.identity import Out
from segstream.schemas.privacy import email_hash
from segstream.schemas.records import Erasure


def subject(
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    email: str | None = None,
    email_key: bytes = b"",
) -> str:
    """The alias of exactly one identifier; an email is hashed as the edge hashes it."""
    given = [x for x in (user_id, anonymous_id, email) if x]
    if len(given) != 1:
        raise ValueError("give exactly one of a user id, an anonymous id or an email")
    if user_id:
        return "u:" + user_id
    if anonymous_id:
        return "a:" + anonymous_id
    assert email is not None
    if "@" not in email:
        raise ValueError("that is not an email address")
    return "e:" + email_hash(email, email_key)


def command(alias: str, at_ms: int, cascade: bool = False) -> dict[str, Any]:
    """The ``erase`` record the identity and profile stages act on."""
    return {"k": "erase", "alias": alias, "at_ms": at_ms, "cascade": cascade}


def dispatch(erasure: Erasure) -> Out:
    """An erasure read from ``erasures``: to the identity partition of its alias."""
    return Out("identity", erasure.alias, command(erasure.alias, erasure.requested_ms))


def at_identity(entry: str | None, alias: str, record: dict[str, Any]) -> list[Out]:
    """At the alias's identity partition (its link ``entry`` is dropped by the caller)."""
    profile = entry or alias
    outs = [Out("events", profile, command(record["alias"], record["at_ms"]))]
    if profile != alias:  # the alias's own profile was merged away: its marker goes too
        outs.append(Out("events", alias, command(record["alias"], record["at_ms"], cascade=True)))
    return outs


def at_profile(
    merged_into: str | None, absorbed: Sequence[str], key: str, record: dict[str, Any]
) -> list[Out]:
    """At the profile's partition, for a profile that exists (the caller deletes it).

    ``merged_into`` and ``absorbed`` are the profile's links to the rest of the person.
    """
    alias, at_ms = record["alias"], record["at_ms"]
    outs: list[Out] = []
    if merged_into and not record.get("cascade"):
        outs.append(Out("events", merged_into, command(alias, at_ms)))
    found = [key] if key != alias else []
    for other in absorbed:
        outs.append(Out("events", other, command(alias, at_ms, cascade=True)))
        found.append(other)
    outs += [
        Out("erasures", a, {"alias": a, "requested_ms": at_ms, "reason": "", "via": alias})
        for a in found
    ]
    return outs


def suppressed(record: dict[str, Any], key: str, erased: Container[str]) -> bool:
    """Whether a record reaching a profile or alias must be dropped: its key was erased,
    or it links or merges into an erased profile. Erase commands always pass."""
    kind = record.get("k")
    if kind == "erase":
        return False
    return key in erased or record.get("to") in erased or record.get("into") in erased
