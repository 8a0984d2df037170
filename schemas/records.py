"""Records segstream writes: the ``segments``, ``segment-changes``, ``dlq``, ``erasures``
and ``audit`` topics.

These are public API (see docs/reference/topics.md); change them only on purpose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from segstream.schemas.privacy import redact_emails


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """A user's current segment. Value of the compacted ``segments`` topic, key = profile.

    ``seq`` is the profile's logical clock (events applied); together with the model
    ``version`` it orders writes, so a replayed or late record never overwrites a newer one.
    """

    profile: str
    segment: int
    version: int
    seq: int
    updated_ms: int
    scores: dict[int, float]
    features: dict[str, float] | None = None
    email_sha256: str | None = None  # for ad-platform customer lists; never a raw email
    consent_marketing: bool | None = None  # False: left out of exports
    revenue: float = 0.0  # lifetime, for the segment's health sums (models.health)
    converted: bool = False
    ad_cost: float = 0.0

    def to_json(self) -> bytes:
        return orjson.dumps(self, option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def from_json(cls, raw: bytes) -> SegmentRecord:
        d = orjson.loads(raw)
        d["scores"] = {int(k): float(v) for k, v in d["scores"].items()}
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True, slots=True)
class SegmentChange:
    """A user entered a segment (``old`` None), or moved. Value of ``segment-changes``."""

    id: str
    profile: str
    old: int | None
    new: int
    version: int
    seq: int
    at_ms: int  # event time of the profile's latest event
    emitted_ms: int

    @staticmethod
    def make_id(profile: str, old: int | None, new: int, seq: int, version: int) -> str:
        """Deterministic: the same change replayed carries the same id."""
        raw = f"{profile}|{old}|{new}|{seq}|{version}".encode()
        return hashlib.blake2b(raw, digest_size=16).hexdigest()

    def to_json(self) -> bytes:
        return orjson.dumps(self)


@dataclass(frozen=True, slots=True)
class SegmentEvent:
    """A segment appeared in or vanished from the model. Also on ``segment-changes``
    (``kind`` "segment", key ``segment:<id>``); per-user changes have no ``kind``."""

    id: str
    segment: int
    event: str  # "appeared" | "vanished"
    version: int
    at_ms: int  # the model's event time
    name: str | None = None  # of a segment that appeared
    kind: str = "segment"

    @classmethod
    def make(
        cls, segment: int, event: str, version: int, at_ms: int, name: str | None
    ) -> SegmentEvent:
        raw = f"segment|{segment}|{event}|{version}".encode()
        return cls(
            hashlib.blake2b(raw, digest_size=16).hexdigest(), segment, event, version, at_ms, name
        )

    @property
    def key(self) -> bytes:
        return f"segment:{self.segment}".encode()

    def to_json(self) -> bytes:
        return orjson.dumps(self)


def is_segment_event(change: Mapping[str, Any]) -> bool:
    """True for a segment-level record on ``segment-changes`` (not a user's change)."""
    return change.get("kind") == "segment"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record segstream refused, with where it came from and why. Value of ``dlq``.

    ``value`` is the original bytes (as latin-1 text so any byte survives JSON) with
    anything that looks like an email address redacted.
    """

    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    stage: str
    at_ms: int

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def of(
        cls,
        reason: str,
        detail: str,
        where: tuple[str, int, int],
        key: bytes | None,
        value: bytes | None,
        stage: str,
        at_ms: int,
    ) -> tuple[bytes | None, DeadLetter]:
        """The letter for a refused record at ``where`` (topic, partition, offset), and its
        key: emails redacted from both, any byte kept."""
        key = redact_emails(key) if key else None
        letter = cls(
            reason=reason,
            detail=detail,
            topic=where[0],
            partition=where[1],
            offset=where[2],
            key=key.decode("latin-1") if key else None,
            value=redact_emails(value or b"").decode("latin-1"),
            stage=stage,
            at_ms=at_ms,
        )
        return key, letter

    @classmethod
    def from_json(cls, raw: bytes) -> DeadLetter:
        return cls(**orjson.loads(raw))

    def raw_value(self) -> bytes:
        return self.value.encode("latin-1")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Erasure:
    """A person to forget. Value of the compacted ``erasures`` topic, key = ``alias``.

    The topic is also the suppression list: every worker drops later events, links and
    merges of an alias it holds. ``alias`` is ``u:<user id>``, ``a:<anonymous id>`` or
    ``e:<keyed email hash>``, never a raw email. ``via`` is set on aliases found while
    erasing another one (a profile that had been merged into the erased customer).
    """

    alias: str
    requested_ms: int
    reason: str = ""
    via: str | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes) -> Erasure:
        d = orjson.loads(raw)
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What segstream did about a person's data. Value of ``audit``, key = ``alias``.

    ``action`` is ``erase-requested`` (written by ``segstream erase``) or ``erased``
    (written by the worker once the profile's state, view and records are gone).
    """

    action: str
    alias: str
    at_ms: int
    profile: str | None = None
    detail: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes) -> AuditEntry:
        return cls(**orjson.loads(raw))
