"""``segstream erase``: forget a person (right to erasure), and show what was done.

``request`` writes the person's alias to the compacted ``erasures`` topic (the
suppression list every worker holds) and an ``erase-requested`` entry to ``audit``. The
worker does the rest (see ``models.erasure``): it drops the alias's link, deletes the
profile and every profile merged into it from its tables (changelog tombstones), from
Redis and from the compacted ``segments`` and ``training`` topics (tombstones), writes
an ``erased`` audit entry per profile, and from then on drops the person's events.

A raw email is hashed here as the worker hashes it and never written anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from segstream.consumers.exports import read
from segstream.schemas.records import AuditEntry, Erasure
from segstream.schemas.settings import Settings
from segstream.streams.produce import deliver
from segstream.streams.topics import ensure_topics


def request(settings: Settings, alias: str, reason: str = "") -> Erasure:
    """Record the erasure and its audit entry; returns once the broker has both."""
    now = int(time.time() * 1000)
    erasure = Erasure(alias=alias, requested_ms=now, reason=reason)
    audit = AuditEntry(action="erase-requested", alias=alias, at_ms=now, detail={"reason": reason})
    key = alias.encode()
    ensure_topics(settings)  # erasures must be compacted, not auto-created by the broker
    try:
        deliver(
            settings,
            [
                (settings.topic("erasures"), key, erasure.to_json()),
                (settings.topic("audit"), key, audit.to_json()),
            ],
        )
    except RuntimeError as exc:
        raise RuntimeError(f"the erasure was not recorded: {exc}") from None
    return erasure


def audit_entries(settings: Settings, since_ms: int | None = None) -> Iterator[AuditEntry]:
    """The audit topic's entries from ``since_ms`` (log time) to its end now."""
    for _, value in read(settings, settings.topic("audit"), since_ms):
        if value is not None:
            yield AuditEntry.from_json(value)


def wait_erased(
    settings: Settings, erasure: Erasure, timeout: float, poll_s: float = 1.0
) -> list[AuditEntry]:
    """The worker's ``erased`` entries for this request, once there is one (the profiles
    linked to it follow within moments); raises TimeoutError after ``timeout`` seconds
    (is a worker running?)."""
    deadline = time.monotonic() + timeout
    since = erasure.requested_ms - 1000
    while True:
        done = [
            e
            for e in audit_entries(settings, since)
            if e.action == "erased" and (e.detail or {}).get("request") == erasure.alias
        ]
        if done:
            return done
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no worker confirmed the erasure of {erasure.alias} within {timeout:.0f}s"
            )
        time.sleep(poll_s)
