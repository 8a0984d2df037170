"""Turn raw Kafka record bytes into a validated :class:`Event` or a :class:`Rejection`.

Bad input is data, not an exception: the caller sends every rejection to the
dead-letter topic with its reason and moves on.

>>> from datetime import UTC, datetime
>>> p = EventParser(key=b"k", now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
>>> p.parse(b'{"event_id": "e1", "source": "web", "type": "page_view", '
...         b'"ts": 1767225000000, "anonymous_id": "a1"}', "web").event_id
'e1'
>>> p.parse(b"{not json", "web").reason
'malformed_json'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from segstream.schemas.events import CONTRACTS, Event, to_event
from segstream.schemas.privacy import email_hash, email_sha256, redact_email_text
from segstream.schemas.versions import upgrade

if TYPE_CHECKING:  # settings import the trigger rules, which import events
    from segstream.schemas.settings import Settings

REASONS = (
    "oversized",
    "empty",
    "invalid_utf8",
    "malformed_json",
    "not_an_object",
    "unknown_schema_version",
    "source_mismatch",
    "invalid_email",
    "invalid_field",
    "missing_identity",
    "ts_in_future",
    "ts_too_old",
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was refused. ``detail`` never contains a raw email.

    ``value``: for a refusal by a configured limit, what the limit refused: the event
    time in epoch ms (``ts_too_old``, ``ts_in_future``), the record's size in bytes
    (``oversized``), its ``schema_version`` when an integer (``unknown_schema_version``).
    Summaries use it to say which value of the setting would accept the record.
    """

    reason: str
    detail: str
    value: int | None = None


class EventParser:
    """Validates records of the three sources; configured once, called per record."""

    def __init__(
        self,
        key: bytes,
        *,
        max_bytes: int = 64 * 1024,
        max_future_skew: timedelta = timedelta(days=1),
        min_year: int = 2000,
        versions: Iterable[int] = (1, 2),
        now: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self._key = key
        self._max_bytes = max_bytes
        self._max_skew = max_future_skew
        self._min_year = min_year
        self._min_ts_ms = int(datetime(min_year, 1, 1, tzinfo=UTC).timestamp() * 1000)
        self._versions = frozenset(versions)
        self._now = now

    def parse(
        self, raw: bytes | None, source: str, ingest_ms: int | None = None
    ) -> Event | Rejection:
        """``raw`` from the ``source`` topic as an event (``ingest_ms``: when Kafka took
        the record), or the reason it is rejected."""
        if not raw:
            return Rejection("empty", "record has no value")
        if len(raw) > self._max_bytes:
            return Rejection(
                "oversized",
                f"{len(raw)} bytes > limit {self._max_bytes} (SEGSTREAM_MAX_EVENT_BYTES)",
                len(raw),
            )
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection("invalid_utf8", f"invalid UTF-8 at byte {exc.start}")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Rejection("malformed_json", str(exc)[:200])
        if not isinstance(data, dict):
            return Rejection("not_an_object", f"expected a JSON object, got {type(data).__name__}")
        return self.parse_obj(data, source, ingest_ms)

    def parse_obj(
        self, data: dict[str, Any], source: str, ingest_ms: int | None = None
    ) -> Event | Rejection:
        version = data.get("schema_version", 2)
        if type(version) is not int or version not in self._versions:
            return Rejection(
                "unknown_schema_version",
                f"schema_version must be one of {sorted(self._versions)} "
                "(SEGSTREAM_SCHEMA_VERSIONS)",
                version if type(version) is int else None,
            )
        data = dict(upgrade(data))
        if data.setdefault("source", source) != source:
            return Rejection("source_mismatch", f"the source field does not match topic {source!r}")
        if "email" in data:
            raw_email = data.pop("email")
            if raw_email is not None:
                if not isinstance(raw_email, str):
                    return Rejection("invalid_email", "email must be a string")
                try:
                    data.setdefault("email_hash", email_hash(raw_email, self._key))
                    data.setdefault("email_sha256", email_sha256(raw_email))
                except ValueError:
                    return Rejection("invalid_email", "email is not a valid address")
        try:
            model = CONTRACTS[source].model_validate(data)
        except ValidationError as exc:
            return Rejection("invalid_field", _describe(exc))
        if not (model.user_id or model.anonymous_id or model.email_hash):
            return Rejection(
                "missing_identity", "needs one of user_id, anonymous_id, email, email_hash"
            )
        event = to_event(model, ingest_ms)
        if event.ts_ms < self._min_ts_ms:
            return Rejection(
                "ts_too_old",
                f"ts {model.ts.isoformat()} is before {self._min_year}-01-01, the minimum "
                "(SEGSTREAM_MIN_EVENT_YEAR)",
                event.ts_ms,
            )
        if model.ts > self._now() + self._max_skew:
            return Rejection(
                "ts_in_future",
                f"ts {model.ts.isoformat()} is more than {self._max_skew.total_seconds():.0f} s "
                "ahead of the clock (SEGSTREAM_MAX_FUTURE_SKEW_S)",
                event.ts_ms,
            )
        return event


def _describe(exc: ValidationError) -> str:
    """Field-level summary of a validation error, without echoing input values."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return redact_email_text("; ".join(parts))


@lru_cache(maxsize=1 << 14)  # asked twice per event: is it applied, then remember it
def event_digest(event_id: str) -> int:
    """A stable 63-bit number for an event id (for compact dedupe sets)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest()) >> 1


def parser_for(settings: Settings) -> EventParser:
    """The parser with the limits the settings give: the edge and ``segstream replay``
    check the same ones."""
    return EventParser(
        settings.email_hash_key.get_secret_value().encode(),
        max_bytes=settings.max_event_bytes,
        max_future_skew=timedelta(seconds=settings.max_future_skew_s),
        min_year=settings.min_event_year,
        versions=settings.schema_versions,
    )
