"""A synthetic web/ad/CRM stream with planted behavioural groups and their ground truth.

This is the built-in sample data (``segstream generate``) and the test oracle's
input. Generation is pure and repeatable: the same seed gives the same events.
Each user belongs to one planted group ("persona"); the truth maps the profile
key the pipeline will end up with (``u:<user_id>`` for known customers,
``a:<anonymous_id>`` for visitors who never identify) to the persona.

Identity is exercised on purpose: known customers browse anonymously first,
then log in (an event carrying both ids), their CRM records carry only the
user id and a raw email, and some of their ad clicks carry only the email.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DAY_MS = 86_400_000
PERSONAS = ("bargain_browser", "loyal_high_value", "paid_newcomer", "lapsed", "b2b_buyer")


@dataclass(frozen=True, slots=True)
class Generated:
    """One produced record: which source topic, its key and its JSON-able value."""

    source: str
    key: str
    value: dict[str, Any]


@dataclass
class _User:
    idx: int
    persona: str
    anonymous_id: str
    user_id: str | None
    email: str | None


class Generator:
    """Planted-persona event generator.

    >>> g = Generator(users=10, seed=1)
    >>> events = list(g.events())
    >>> len({e.value["event_id"] for e in events}) == len(events)
    True
    >>> sorted(set(g.truth.values())) == sorted(set(g.truth.values()) & set(PERSONAS))
    True
    """

    def __init__(
        self,
        users: int = 2000,
        seed: int = 7,
        end: datetime = datetime(2026, 6, 1, tzinfo=UTC),
        days: int = 180,
        personas: tuple[str, ...] = PERSONAS,
        events_per_user: int | None = None,
    ) -> None:
        if events_per_user is not None and events_per_user < 1:
            raise ValueError(f"events_per_user must be at least 1, got {events_per_user}")
        self.events_per_user = events_per_user  # each user's latest ones only (scale runs)
        self.rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self.end_ms = int(end.timestamp() * 1000)
        self.start_ms = self.end_ms - days * DAY_MS
        self.personas = personas
        self.users = [self._user(i) for i in range(users)]
        self.truth: dict[str, str] = {self.profile_of(u): u.persona for u in self.users}
        self._seq = 0

    @staticmethod
    def profile_of(u: _User) -> str:
        """The profile key the pipeline ends up with for ``u``."""
        return f"u:{u.user_id}" if u.user_id else f"a:{u.anonymous_id}"

    def _user(self, i: int) -> _User:
        persona = self.personas[i % len(self.personas)]
        known = persona != "paid_newcomer"
        return _User(
            idx=i,
            persona=persona,
            anonymous_id=f"anon-{i:06d}-{self.rng.randrange(16**6):06x}",
            user_id=f"cust-{i:06d}" if known else None,
            email=f"user{i}@example.com" if known else None,
        )

    def events(self) -> Iterator[Generated]:
        """All events of all users, in event-time order."""
        return self._ordered(self._persona_events(u) for u in self.users)

    def later(self, days: float, shift: str | None = None) -> Iterator[Generated]:
        """The same users ``days`` on, behaving as before: each persona's pattern is drawn
        again up to the new end and only its part after the old end is kept. Call after
        :meth:`events`; the clock (``end_ms``) moves on.

        ``shift`` names a persona whose channel mix moves in that period: paid search
        reaches them (an ad click before each session, the session on ``google_ads``).
        """
        if shift is not None and shift not in self.personas:
            raise ValueError(f"unknown persona {shift!r}")
        before = self.end_ms
        self.end_ms += int(days * DAY_MS)
        self.start_ms += int(days * DAY_MS)
        batches = []
        for u in self.users:
            new = [e for e in self._persona_events(u) if e.value["ts"] > before]
            batches.append(self._paid_search(u, new) if u.persona == shift else new)
        return self._ordered(batches)

    def _persona_events(self, u: _User) -> list[Generated]:
        events: list[Generated] = getattr(self, "_" + u.persona)(u)
        if self.events_per_user is not None:
            events.sort(key=lambda e: e.value["ts"])
            del events[: -self.events_per_user]
        return events

    def _paid_search(self, u: _User, events: list[Generated]) -> list[Generated]:
        out: list[Generated] = []
        sessions: set[str | None] = set()
        for e in events:
            if e.source == "web":
                e.value["channel"] = "google_ads"
                if e.value.get("session_id") not in sessions:
                    sessions.add(e.value.get("session_id"))
                    cost = self.rng.uniform(1.0, 3.0)
                    out.append(self._ad(u, "click", e.value["ts"] - 1000, "google_ads", cost))
            out.append(e)
        return out

    @staticmethod
    def _ordered(batches: Iterable[list[Generated]]) -> Iterator[Generated]:
        out: list[tuple[int, int, Generated]] = []
        for batch in batches:
            for ev in batch:
                out.append((ev.value["ts"], len(out), ev))
        out.sort(key=lambda t: (t[0], t[1]))
        for _, _, ev in out:
            yield ev

    # ------------------------------------------------------------ primitives
    def _id(self) -> str:
        self._seq += 1
        return f"evt-{self._seq:09d}"

    def _ts(self, lo_days_ago: float, hi_days_ago: float) -> int:
        days = self.rng.uniform(hi_days_ago, lo_days_ago)
        return self.end_ms - int(days * DAY_MS)

    def _web(
        self,
        u: _User,
        type_: str,
        ts: int,
        session: str | None,
        *,
        logged_in: bool,
        channel: str | None,
        device: str,
        revenue: float = 0.0,
    ) -> Generated:
        value: dict[str, Any] = {
            "event_id": self._id(),
            "source": "web",
            "type": type_,
            "ts": ts,
            "schema_version": 2,
            "anonymous_id": u.anonymous_id,
            "session_id": session,
            "page": f"/p/{self.rng.randrange(500)}",
            "device_type": device,
            "channel": channel,
        }
        value = {k: v for k, v in value.items() if v is not None}
        if logged_in and u.user_id:
            value["user_id"] = u.user_id
        if revenue:
            value["revenue"] = round(revenue, 2)
        return Generated("web", u.user_id if logged_in and u.user_id else u.anonymous_id, value)

    def _ad(
        self,
        u: _User,
        type_: str,
        ts: int,
        channel: str,
        cost: float,
        revenue: float = 0.0,
        by_email: bool = False,
    ) -> Generated:
        value: dict[str, Any] = {
            "event_id": self._id(),
            "source": "ad",
            "type": type_,
            "ts": ts,
            "schema_version": 2,
            "channel": channel,
            "campaign_id": f"{channel}-cmp-{self.rng.randrange(5)}",
            "cost": round(cost, 4),
        }
        if by_email and u.email:
            value["email"] = u.email
        else:
            value["anonymous_id"] = u.anonymous_id
        if revenue:
            value["revenue"] = round(revenue, 2)
        return Generated("ad", u.anonymous_id, value)

    def _crm(self, u: _User, type_: str, ts: int, amount: float = 0.0) -> Generated:
        value: dict[str, Any] = {
            "event_id": self._id(),
            "source": "crm",
            "type": type_,
            "ts": ts,
            "schema_version": 2,
            "user_id": u.user_id,
            "email": u.email,
            "amount": round(amount, 2),
        }
        return Generated("crm", u.user_id or u.anonymous_id, value)

    def _sessions(
        self,
        u: _User,
        n: int,
        window: tuple[float, float],
        pages: tuple[int, int],
        *,
        channel: str,
        device: str,
        cart_p: float,
        buy_p: float,
        basket: tuple[float, float],
        login_after: int = 0,
    ) -> list[Generated]:
        out = []
        for s in range(n):
            ts = self._ts(*window)
            session = f"s-{u.idx}-{s}-{self.rng.randrange(10**6)}"
            logged_in = s >= login_after
            for p in range(self.rng.randint(*pages)):
                out.append(
                    self._web(
                        u,
                        "page_view",
                        ts + p * 30_000,
                        session,
                        logged_in=logged_in,
                        channel=channel,
                        device=device,
                    )
                )
            t_end = ts + 3_600_000
            if self.rng.random() < cart_p:
                out.append(
                    self._web(
                        u,
                        "add_to_cart",
                        t_end,
                        session,
                        logged_in=logged_in,
                        channel=channel,
                        device=device,
                    )
                )
                if self.rng.random() < buy_p:
                    out.append(
                        self._web(
                            u,
                            "checkout",
                            t_end + 1000,
                            session,
                            logged_in=logged_in,
                            channel=channel,
                            device=device,
                        )
                    )
                    out.append(
                        self._web(
                            u,
                            "purchase",
                            t_end + 2000,
                            session,
                            logged_in=True,
                            channel=channel,
                            device=device,
                            revenue=self.rng.uniform(*basket),
                        )
                    )
        return out

    # -------------------------------------------------------------- personas
    def _bargain_browser(self, u: _User) -> list[Generated]:
        n = self.rng.randint(10, 16)
        out = self._sessions(
            u,
            n,
            (25, 0),
            (8, 14),
            channel="social",
            device="mobile",
            cart_p=0.7,
            buy_p=0.08,
            basket=(10, 30),
            login_after=n // 2,
        )
        out.append(self._crm(u, "identify", self._ts(20, 10)))
        return out

    def _loyal_high_value(self, u: _User) -> list[Generated]:
        n = self.rng.randint(6, 9)
        out = self._sessions(
            u,
            n,
            (28, 0),
            (2, 4),
            channel="email",
            device="desktop",
            cart_p=0.95,
            buy_p=0.9,
            basket=(150, 400),
            login_after=1,
        )
        for _ in range(self.rng.randint(2, 4)):
            out.append(self._crm(u, "purchase", self._ts(150, 5), self.rng.uniform(200, 600)))
        return out

    def _paid_newcomer(self, u: _User) -> list[Generated]:
        channel = self.rng.choice(("google_ads", "meta"))
        out = []
        for _ in range(self.rng.randint(12, 20)):
            out.append(
                self._ad(u, "impression", self._ts(10, 0), channel, self.rng.uniform(0.01, 0.03))
            )
        for _ in range(self.rng.randint(4, 7)):
            out.append(self._ad(u, "click", self._ts(10, 0), channel, self.rng.uniform(1.5, 4.0)))
        out += self._sessions(
            u,
            self.rng.randint(1, 2),
            (10, 0),
            (1, 3),
            channel=channel,
            device="mobile",
            cart_p=0.1,
            buy_p=0.1,
            basket=(20, 60),
        )
        return out

    def _lapsed(self, u: _User) -> list[Generated]:
        out = self._sessions(
            u,
            self.rng.randint(3, 5),
            (170, 120),
            (3, 6),
            channel="direct",
            device="desktop",
            cart_p=0.8,
            buy_p=0.8,
            basket=(40, 120),
            login_after=0,
        )
        out.append(self._crm(u, "purchase", self._ts(160, 120), self.rng.uniform(40, 120)))
        return out

    def _b2b_buyer(self, u: _User) -> list[Generated]:
        out = []
        for _ in range(self.rng.randint(3, 5)):
            out.append(
                self._ad(
                    u,
                    "click",
                    self._ts(60, 0),
                    "linkedin",
                    self.rng.uniform(6.0, 12.0),
                    by_email=True,
                )
            )
        for _ in range(self.rng.randint(2, 3)):
            out.append(self._crm(u, "deal_won", self._ts(90, 0), self.rng.uniform(5000, 20000)))
        out.append(self._crm(u, "deal_lost", self._ts(90, 0), self.rng.uniform(3000, 8000)))
        out += self._sessions(
            u,
            self.rng.randint(1, 3),
            (60, 0),
            (2, 5),
            channel="linkedin",
            device="desktop",
            cart_p=0.0,
            buy_p=0.0,
            basket=(0, 0),
            login_after=0,
        )
        return out
