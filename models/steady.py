"""A stationary population: the five personas at constant daily rates.

:class:`~models.synthetic.Generator` draws each persona's history relative to *now*
(newcomers only in the last days, the lapsed only months ago), which is right for a
demo but not stationary: carried forward, its population changes shape. Here every
persona is a set of Poisson processes with fixed rates, so the population's
distribution of windowed features settles and then stays put; continuing it with
:meth:`Generator.later` is the control stream drift detection must stay quiet on,
and ``later(days, shift=...)`` the change it must notice.

>>> g = SteadyGenerator(users=10, seed=1, days=30)
>>> first = list(g.events())
>>> more = list(g.later(10))
>>> min(e.value["ts"] for e in more) > max(e.value["ts"] for e in first)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from segstream.models.synthetic import DAY_MS, Generated, Generator, _User


class SteadyGenerator(Generator):
    present: set[str]  # profile keys of the users the history has events of

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.present = set()

    def events(self) -> Iterator[Generated]:
        """Opening balances at the start, then the history: see :meth:`_opening`. A user
        without a single event in the history has no opening either."""
        batches = []
        for u in self.users:
            history = self._persona_events(u)
            batches.append(self._opening(u) + history if history else [])
            if history:
                self.present.add(self.profile_of(u))
        return self._ordered(batches)

    def _opening(self, u: _User) -> list[Generated]:
        """What a long past leaves in the 180-day money windows, as one event per kind.

        A window that decays with a time constant of 180 days needs years of events to
        settle. Instead the persona's past (three time constants before the start) is
        drawn, each amount decayed to the start and summed, and the sums are sent as one
        purchase (no session, no channel), one ad cost and one CRM record of each kind at
        the start: the windows open at their settled level and stay there as the real
        history adds what decay takes away.
        """
        tau = 180 * DAY_MS
        end, start = self.end_ms, self.start_ms
        self.end_ms, self.start_ms = start - 1, start - 3 * tau
        past = self._persona_events(u)
        self.end_ms, self.start_ms = end, start
        sums: dict[tuple[str, str], float] = {}
        for e in past:
            v = e.value
            amount = v.get("revenue", 0.0) + v.get("amount", 0.0) + v.get("cost", 0.0)
            kind = "ad" if e.source == "ad" else v["type"]
            if amount and kind in ("purchase", "deal_won", "ad"):
                weight = math.exp(-(start - v["ts"]) / tau)
                sums[(e.source, kind)] = sums.get((e.source, kind), 0.0) + amount * weight
        out = []
        for (source, kind), total in sorted(sums.items()):
            if source == "web":
                out.append(
                    self._web(
                        u,
                        "purchase",
                        start,
                        None,
                        logged_in=True,
                        channel=None,
                        device="desktop",
                        revenue=total,
                    )
                )
            elif source == "ad":
                out.append(self._ad(u, "impression", start, "opening", total))
            else:
                out.append(self._crm(u, kind, start, total))
        return out

    def _poisson(self, rate_per_day: float) -> int:
        """Arrivals over the whole span at ``rate_per_day`` (Knuth's method, small means
        split into chunks so ``exp`` never underflows)."""
        mean = rate_per_day * (self.end_ms - self.start_ms) / DAY_MS
        n = 0
        while mean > 0:
            step = min(mean, 30.0)
            mean -= step
            limit, p = math.exp(-step), self.rng.random()
            while p > limit:
                n += 1
                p *= self.rng.random()
        return n

    @property
    def _span(self) -> tuple[float, float]:
        return ((self.end_ms - self.start_ms) / DAY_MS, 0.0)

    def _crms(
        self, u: _User, type_: str, rate: float, amount: tuple[float, float]
    ) -> list[Generated]:
        return [
            self._crm(u, type_, self._ts(*self._span), self.rng.uniform(*amount))
            for _ in range(self._poisson(rate))
        ]

    def _ads(
        self,
        u: _User,
        type_: str,
        rate: float,
        channel: str,
        cost: tuple[float, float],
        *,
        by_email: bool = False,
    ) -> list[Generated]:
        return [
            self._ad(
                u, type_, self._ts(*self._span), channel, self.rng.uniform(*cost), by_email=by_email
            )
            for _ in range(self._poisson(rate))
        ]

    # -------------------------------------------------------------- personas
    def _bargain_browser(self, u: _User) -> list[Generated]:
        return self._sessions(
            u, self._poisson(0.4), self._span, (8, 14), channel="social", device="mobile",
            cart_p=0.7, buy_p=0.08, basket=(10, 30),
        )  # fmt: skip

    def _loyal_high_value(self, u: _User) -> list[Generated]:
        out = self._sessions(
            u, self._poisson(0.25), self._span, (2, 4), channel="email", device="desktop",
            cart_p=0.95, buy_p=0.9, basket=(150, 400),
        )  # fmt: skip
        return out + self._crms(u, "purchase", 0.02, (200, 600))

    def _paid_newcomer(self, u: _User) -> list[Generated]:
        channel = ("google_ads", "meta")[u.idx % 2]
        out = self._ads(u, "impression", 1.5, channel, (0.01, 0.03))
        out += self._ads(u, "click", 0.5, channel, (1.5, 4.0))
        return out + self._sessions(
            u, self._poisson(0.15), self._span, (1, 3), channel=channel, device="mobile",
            cart_p=0.1, buy_p=0.1, basket=(20, 60),
        )  # fmt: skip

    def _lapsed(self, u: _User) -> list[Generated]:
        return self._sessions(
            u, self._poisson(0.01), self._span, (3, 6), channel="direct", device="desktop",
            cart_p=0.8, buy_p=0.8, basket=(40, 120),
        )  # fmt: skip

    def _b2b_buyer(self, u: _User) -> list[Generated]:
        out = self._ads(u, "click", 0.07, "linkedin", (6.0, 12.0), by_email=True)
        out += self._crms(u, "deal_won", 0.03, (5000, 20000))
        out += self._crms(u, "deal_lost", 0.01, (3000, 8000))
        return out + self._sessions(
            u, self._poisson(0.03), self._span, (2, 5), channel="linkedin", device="desktop",
            cart_p=0.0, buy_p=0.0, basket=(0, 0),
        )  # fmt: skip
