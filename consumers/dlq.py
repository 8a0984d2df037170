"""``segstream dlq``: what was refused and why, and sending it again after a fix.

Every record the worker refuses lands on the ``dlq`` topic as a ``DeadLetter``: its
bytes (emails redacted), where it came from (topic, partition, offset, key), the stage
that refused it and the reason. ``show`` summarises the letters of a time window;
``replay`` produces the chosen ones back to the topic they came from, for the worker to
take again once the cause is fixed (a new schema version allowed, a producer repaired).

Replaying is safe to repeat: an event the worker has already applied is recognised by
its id and skipped, and a letter that still fails becomes a new letter with the same
reason. An email the letter had is gone (redacted, never stored): ``replay`` removes
the redacted field, so the event comes back with its other identifiers, or is refused
again as ``missing_identity`` when the email was its only one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from segstream.consumers.exports import read
from segstream.schemas.privacy import REDACTED_EMAIL
from segstream.schemas.records import DeadLetter
from segstream.schemas.settings import Settings
from segstream.streams.produce import deliver


@dataclass
class Summary:
    letters: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_stage: Counter[str] = field(default_factory=Counter)
    by_topic: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0  # dlq records that are not dead letters (written by something else)
    latest: list[DeadLetter] = field(default_factory=list)


@dataclass
class Replayed:
    sent: int = 0
    emails_removed: int = 0  # letters whose redacted email field was taken out
    by_topic: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)


def letters(settings: Settings, since_ms: int | None = None) -> Iterator[DeadLetter | None]:
    """The dlq topic's letters from ``since_ms`` (log time) to its end now; ``None`` for a
    record that is not a dead letter."""
    for _, value in read(settings, settings.topic("dlq"), since_ms):
        if value is None:
            continue
        try:
            yield DeadLetter.from_json(value)
        except (orjson.JSONDecodeError, TypeError):
            yield None


def chosen(letter: DeadLetter, reasons: Iterable[str]) -> bool:
    wanted = set(reasons)
    return not wanted or letter.reason in wanted


def show(
    settings: Settings, since_ms: int | None, reasons: Iterable[str] = (), limit: int = 20
) -> Summary:
    """Counts by reason, stage and source topic, and the ``limit`` latest letters."""
    out = Summary()
    for letter in letters(settings, since_ms):
        if letter is None:
            out.unreadable += 1
            continue
        if not chosen(letter, reasons):
            continue
        out.letters += 1
        out.by_reason[letter.reason] += 1
        out.by_stage[letter.stage] += 1
        out.by_topic[letter.topic] += 1
        out.latest.append(letter)
        if len(out.latest) > limit:
            out.latest.sort(key=lambda d: d.at_ms)
            del out.latest[0]
    out.latest.sort(key=lambda d: d.at_ms)
    return out


def without_redacted_email(raw: bytes) -> tuple[bytes, bool]:
    """The value with any field holding a redacted email removed (a JSON object only)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw, False
    if not isinstance(value, dict):
        return raw, False
    kept = {k: v for k, v in value.items() if v != REDACTED_EMAIL}
    if len(kept) == len(value):
        return raw, False
    return orjson.dumps(kept), True


def replay(
    settings: Settings,
    since_ms: int | None,
    reasons: Iterable[str] = (),
    dry_run: bool = False,
) -> Replayed:
    """Produce the chosen letters back to their topics, with their keys; waits for the
    broker to have them all."""
    out = Replayed()

    def chosen_records() -> Iterator[tuple[str, bytes | None, bytes]]:
        for letter in letters(settings, since_ms):
            if letter is None or not chosen(letter, reasons):
                continue
            value, removed = without_redacted_email(letter.raw_value())
            out.sent += 1
            out.emails_removed += removed
            out.by_topic[letter.topic] += 1
            out.by_reason[letter.reason] += 1
            key = letter.key.encode("latin-1") if letter.key is not None else None
            yield letter.topic, key, value

    if dry_run:
        for _ in chosen_records():
            pass
    else:
        try:
            deliver(settings, chosen_records())
        except RuntimeError as exc:
            raise RuntimeError(f"replayed records were not all delivered: {exc}") from None
    return out
