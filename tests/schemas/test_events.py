"""schemas/events.py: the contracts and the internal Event record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from segstream.schemas.events import AdEvent, CrmEvent, Event, WebEvent, to_event


def test_event_dict_round_trip_drops_nones():
    ev = Event("e1", "web", "page_view", 1000, anonymous_id="a", amount=2.0)
    d = ev.to_dict()
    assert "user_id" not in d
    assert d["anonymous_id"] == "a"
    assert Event.from_dict(d) == ev


def test_event_is_frozen():
    ev = Event("e1", "web", "page_view", 1000)
    with pytest.raises(AttributeError):
        ev.ts_ms = 5  # type: ignore[misc]


def test_contracts_are_source_specific():
    with pytest.raises(ValidationError):
        WebEvent.model_validate({"event_id": "e", "source": "ad", "type": "t", "ts": 0})
    with pytest.raises(ValidationError):
        AdEvent.model_validate({"event_id": "e", "source": "ad", "type": "t", "ts": 0})


def test_epoch_ms_becomes_utc_datetime():
    m = CrmEvent.model_validate(
        {"event_id": "e", "source": "crm", "type": "t", "ts": 1_767_225_600_000, "user_id": "u"}
    )
    assert m.ts == datetime(2026, 1, 1, tzinfo=UTC)


def test_money_bounds():
    with pytest.raises(ValidationError):
        WebEvent.model_validate(
            {"event_id": "e", "source": "web", "type": "t", "ts": 0, "revenue": float("inf")}
        )
    with pytest.raises(ValidationError):
        AdEvent.model_validate(
            {"event_id": "e", "source": "ad", "type": "t", "ts": 0, "channel": "x", "cost": -1}
        )


def test_to_event_lowercases_type_channel_and_device():
    m = WebEvent.model_validate(
        {
            "event_id": "e",
            "source": "web",
            "type": "Add_To_Cart",
            "ts": 0,
            "anonymous_id": "a",
            "device_type": "Tablet",
            "utm_source": "Meta",
        }
    )
    ev = to_event(m)
    assert (ev.type, ev.device_type, ev.channel) == ("add_to_cart", "tablet", "meta")


def test_to_event_rejects_unknown_contracts():
    from segstream.schemas.events import Envelope

    m = Envelope.model_validate({"event_id": "e", "source": "web", "type": "t", "ts": 0})
    with pytest.raises(TypeError):
        to_event(m)
