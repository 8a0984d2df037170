"""Business figures per segment: what each member is worth and what reaching them cost.

A member contributes, as of their latest event (lifetime figures, so they never decay
between two writes):

* ``revenue``: purchases (web and CRM orders) plus won CRM deals;
* ``converted``: at least one purchase, won deal or ad-platform conversion;
* ``ad_cost``: ad spend attributed to them.

The live view keeps per-segment sums of these in integer cents, updated in the same
Redis script that moves a user between segments, so the sums are exact and rebuildable
from the ``segments`` topic. :class:`Health` turns the sums into the ratios marketers
read: conversion rate, revenue per user, CAC (ad cost per converted user) and ROAS
(revenue per unit of ad cost).

>>> h = Health(users=4, revenue=300.0, converted=2, ad_cost=60.0)
>>> h.conversion_rate, h.revenue_per_user, h.cac, h.roas
(0.5, 75.0, 30.0, 5.0)
>>> Health(users=0, revenue=0.0, converted=0, ad_cost=0.0).roas is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segstream.models.features import Profile


@dataclass(frozen=True, slots=True)
class Value:
    """One member's contribution to their segment's sums."""

    revenue: float
    converted: bool
    ad_cost: float


def value_of(p: Profile) -> Value:
    return Value(
        revenue=p.revenue + p.won_amount,
        converted=p.purchases > 0 or p.deals_won > 0 or p.conversions > 0,
        ad_cost=p.ad_cost,
    )


def cents(amount: float) -> int:
    """Money as integer cents: sums of integers stay exact under add and subtract."""
    return round(amount * 100)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass(frozen=True, slots=True)
class Health:
    """A segment's sums and the ratios built from them (``None`` where undefined)."""

    users: int
    revenue: float
    converted: int
    ad_cost: float

    @classmethod
    def from_cents(cls, users: int, revenue: int, converted: int, ad_cost: int) -> Health:
        return cls(users, revenue / 100, converted, ad_cost / 100)

    @property
    def conversion_rate(self) -> float | None:
        return _ratio(self.converted, self.users)

    @property
    def revenue_per_user(self) -> float | None:
        return _ratio(self.revenue, self.users)

    @property
    def cac(self) -> float | None:
        return _ratio(self.ad_cost, self.converted)

    @property
    def roas(self) -> float | None:
        return _ratio(self.revenue, self.ad_cost)

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "revenue": round(self.revenue, 2),
            "converted": self.converted,
            "ad_cost": round(self.ad_cost, 2),
            "conversion_rate": _round(self.conversion_rate, 4),
            "revenue_per_user": _round(self.revenue_per_user, 2),
            "cac": _round(self.cac, 2),
            "roas": _round(self.roas, 3),
        }


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)
