"""What a user contributes to their segment's figures, and the ratios built from sums."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from functools import reduce

import pytest

from segstream import models, schemas
from segstream.models.features import Profile, apply, merge, new_profile
from segstream.models.health import Health, cents, value_of
from segstream.schemas.events import Event

DAY = 86_400_000


def _fold(key: str, events: list[Event]) -> Profile:
    return reduce(apply, events, new_profile(key))


def test_revenue_counts_purchases_from_any_source_and_won_deals_once() -> None:
    p = _fold(
        "u:1",
        [
            Event("w1", "web", "purchase", DAY, user_id="1", amount=20.0),
            Event("c1", "crm", "purchase", 2 * DAY, user_id="1", amount=100.0),
            Event("c2", "crm", "deal_won", 3 * DAY, user_id="1", amount=5000.0),
            Event("c3", "crm", "deal_lost", 4 * DAY, user_id="1", amount=900.0),
            Event("a1", "ad", "click", 4 * DAY, user_id="1", channel="meta", cost=1.25),
            Event("a2", "ad", "conversion", 5 * DAY, user_id="1", amount=20.0, cost=0.5),
        ],
    )
    v = value_of(p)
    assert v.revenue == pytest.approx(5120.0)  # the ad conversion reports a sale already counted
    assert v.converted is True
    assert v.ad_cost == pytest.approx(1.75)


@pytest.mark.parametrize(
    ("event", "converted"),
    [
        (Event("e", "web", "page_view", DAY, user_id="1"), False),
        (Event("e", "web", "add_to_cart", DAY, user_id="1"), False),
        (Event("e", "ad", "click", DAY, user_id="1", channel="x", cost=1.0), False),
        (Event("e", "web", "purchase", DAY, user_id="1", amount=1.0), True),
        (Event("e", "crm", "deal_won", DAY, user_id="1", amount=1.0), True),
        (Event("e", "ad", "conversion", DAY, user_id="1", channel="x"), True),
    ],
)
def test_converted_means_a_purchase_a_won_deal_or_an_ad_conversion(
    event: Event, converted: bool
) -> None:
    assert value_of(_fold("u:1", [event])).converted is converted


def test_a_merged_profile_is_worth_the_sum_of_both() -> None:
    a = _fold("u:1", [Event("c", "crm", "deal_won", DAY, user_id="1", amount=300.0)])
    b = _fold("a:x", [Event("w", "web", "purchase", DAY, anonymous_id="x", amount=12.5)])
    assert value_of(merge(a, b)).revenue == pytest.approx(312.5)


def test_a_copy_of_an_event_adds_nothing() -> None:
    e = Event("c", "crm", "deal_won", DAY, user_id="1", amount=300.0)
    assert value_of(_fold("u:1", [e, e])).revenue == pytest.approx(300.0)


def test_ratios_are_none_where_undefined() -> None:
    h = Health(users=3, revenue=0.0, converted=0, ad_cost=0.0)
    assert (h.conversion_rate, h.revenue_per_user, h.cac, h.roas) == (0.0, 0.0, None, None)
    assert Health(0, 0.0, 0, 0.0).as_dict()["conversion_rate"] is None


def test_cents_round_trip_through_the_integer_sums() -> None:
    h = Health.from_cents(2, cents(10.005) + cents(0.1), 1, cents(3.3))
    assert h.revenue == pytest.approx(10.11) and h.ad_cost == pytest.approx(3.3)
    assert h.as_dict()["roas"] == round(10.11 / 3.3, 3)


def _modules(package: object) -> list[str]:
    path = package.__path__  # type: ignore[attr-defined]
    return [m.name for m in pkgutil.iter_modules(path, f"{package.__name__}.")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", _modules(models) + _modules(schemas))
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
