"""Event contracts: what producers send on the ``web``, ``ad`` and ``crm`` topics.

The pydantic models are the public contract (``segstream schemas export`` writes
their JSON Schema). Once an event passed the edge it becomes an :class:`Event`,
a small flat record that the feature updater and the internal topics use.

All three sources share an envelope: ``event_id``, ``source``, ``type``, ``ts``
(timezone-aware ISO-8601 or epoch milliseconds), ``schema_version`` and the
identity fields ``user_id``, ``anonymous_id`` and ``email`` or ``email_hash``.
A raw ``email`` is normalised and keyed-hashed at the edge; it never goes
further than the parser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 2
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_EPOCH_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
Source = Literal["web", "ad", "crm"]

_ID = Field(default=None, min_length=1, max_length=256)
_MONEY = Field(default=0.0, ge=0, le=1e9, allow_inf_nan=False)


def _epoch_ms_to_datetime(value: Any) -> Any:
    """Accept epoch milliseconds as well as ISO-8601 strings."""
    if isinstance(value, bool):
        raise ValueError("ts must be an ISO-8601 string or epoch milliseconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not MIN_EPOCH_MS <= value <= MAX_EPOCH_MS:
            raise ValueError("ts in epoch milliseconds is out of range")
        return EPOCH + timedelta(milliseconds=value)  # exact: no float seconds
    return value


class Envelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=128)
    source: Source
    type: str = Field(min_length=1, max_length=64)
    ts: AwareDatetime
    schema_version: int = SCHEMA_VERSION
    user_id: str | None = _ID
    anonymous_id: str | None = _ID
    email_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    email_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    _ts_ms = field_validator("ts", mode="before")(_epoch_ms_to_datetime)


class WebEvent(Envelope):
    """Clickstream: page_view, session_start, add_to_cart, checkout, purchase, or any name."""

    source: Literal["web"]
    page: str | None = Field(default=None, max_length=2048)
    session_id: str | None = _ID
    device_type: str | None = Field(default=None, max_length=32)
    channel: str | None = Field(default=None, max_length=64)
    utm_source: str | None = Field(default=None, max_length=128)
    utm_medium: str | None = Field(default=None, max_length=128)
    utm_campaign: str | None = Field(default=None, max_length=256)
    revenue: float = _MONEY


class AdEvent(Envelope):
    """Advertising: impression, click, conversion (or any name), by channel and campaign."""

    source: Literal["ad"]
    channel: str = Field(min_length=1, max_length=64)
    campaign_id: str | None = Field(default=None, max_length=128)
    cost: float = _MONEY
    revenue: float = _MONEY


class CrmEvent(Envelope):
    """CRM: purchase, deal_won, deal_lost, profile_update, identify, consent_change, churn..."""

    source: Literal["crm"]
    amount: float = Field(default=0.0, ge=-1e9, le=1e9, allow_inf_nan=False)
    consent_marketing: bool | None = None
    attributes: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, max_length=64
    )


CONTRACTS: dict[str, type[Envelope]] = {"web": WebEvent, "ad": AdEvent, "crm": CrmEvent}


@dataclass(frozen=True, slots=True)
class Event:
    """A validated, normalised event as the pipeline carries it internally.

    ``amount`` is the money the event brought in (web/ad revenue, CRM amount);
    ``cost`` is ad spend. Profile attributes are not carried: they are never
    features and so can never steer targeting.
    """

    event_id: str
    source: str
    type: str
    ts_ms: int
    user_id: str | None = None
    anonymous_id: str | None = None
    email_hash: str | None = None
    email_sha256: str | None = None
    session_id: str | None = None
    device_type: str | None = None
    channel: str | None = None
    campaign_id: str | None = None
    amount: float = 0.0
    cost: float = 0.0
    consent_marketing: bool | None = None
    ingest_ms: int | None = None  # when Kafka took the source record (for latency metrics)

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set (every value is a plain scalar: no copy needed)."""
        return {k: v for k in EVENT_FIELDS if (v := getattr(self, k)) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(**data)


EVENT_FIELDS = tuple(f.name for f in fields(Event))


def to_event(model: Envelope, ingest_ms: int | None = None) -> Event:
    """Flatten a validated contract model into an :class:`Event` (``ingest_ms``: when
    Kafka took its record, if known)."""
    ts_ms = (model.ts - EPOCH) // timedelta(milliseconds=1)  # exact integer arithmetic
    common: dict[str, Any] = {
        "event_id": model.event_id,
        "source": model.source,
        "type": model.type.lower(),
        "ts_ms": ts_ms,
        "user_id": model.user_id,
        "anonymous_id": model.anonymous_id,
        "email_hash": model.email_hash,
        "email_sha256": model.email_sha256,
        "ingest_ms": ingest_ms,
    }
    if isinstance(model, WebEvent):
        channel = model.channel or model.utm_source
        return Event(
            **common,
            session_id=model.session_id,
            device_type=model.device_type.lower() if model.device_type else None,
            channel=channel.lower() if channel else None,
            campaign_id=model.utm_campaign,
            amount=model.revenue,
        )
    if isinstance(model, AdEvent):
        return Event(
            **common,
            channel=model.channel.lower(),
            campaign_id=model.campaign_id,
            amount=model.revenue,
            cost=model.cost,
        )
    if isinstance(model, CrmEvent):
        return Event(**common, amount=model.amount, consent_marketing=model.consent_marketing)
    raise TypeError(f"unknown contract {type(model).__name__}")
