"""Retargeting trigger rules: which segment changes fire, when, and how often.

A rule fires when a user *enters* a segment, *leaves* one, or *moves* from one
to another. ``dwell_s`` waits until the user has stayed that long in the new
state before firing (a user who moves on sooner fires nothing: debounce), and
``cap`` limits fires per user and rule within ``cap_window_s``.

Everything here is pure: :func:`on_change` and :func:`on_tick` take a user's
trigger state and return the new state and the triggers to send. Each trigger
has a deterministic id (change id + rule), so a change delivered twice fires
once, and receivers can dedupe on the id.

>>> rule = Rule(name="welcome-vip", on="enter", segment=3)
>>> change = {"id": "c1", "profile": "u:1", "old": 1, "new": 3}
>>> state, fired = on_change(None, change, [rule], now_ms=1_000)
>>> [t.rule for t in fired]
['welcome-vip']
>>> on_change(state, change, [rule], now_ms=2_000)[1]  # the same change again
[]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

MAX_SEEN = 64  # change ids remembered per user for dedupe


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    on: Literal["enter", "leave", "move"]
    segment: int | None = None  # enter/leave: the segment
    from_segment: int | None = None  # move: None means any
    to_segment: int | None = None  # move: None means any
    dwell_s: float = 0.0
    cap: int = 1
    cap_window_s: float = 86_400.0

    def __post_init__(self) -> None:
        if self.on in ("enter", "leave") and self.segment is None:
            raise ValueError(f"rule {self.name!r}: '{self.on}' needs a segment")
        if self.on == "move" and self.from_segment is None and self.to_segment is None:
            raise ValueError(f"rule {self.name!r}: 'move' needs from_segment or to_segment")
        if self.cap < 1 or self.dwell_s < 0 or self.cap_window_s <= 0:
            raise ValueError(f"rule {self.name!r}: cap ≥ 1, dwell_s ≥ 0, cap_window_s > 0")

    def matches(self, old: int | None, new: int) -> bool:
        if self.on == "enter":
            return new == self.segment and old != self.segment
        if self.on == "leave":
            return old == self.segment and new != self.segment
        return (
            old != new
            and old is not None
            and (self.from_segment is None or old == self.from_segment)
            and (self.to_segment is None or new == self.to_segment)
        )

    @property
    def watches_return(self) -> int | None:
        """For 'left X' rules (leave, or a move to anywhere): the X the user must not rejoin."""
        if self.on == "leave":
            return self.segment
        if self.on == "move" and self.to_segment is None:
            return self.from_segment
        return None

    def still_holds(self, state: TriggerState, pending: Pending) -> bool:
        """After the dwell: is the user still where the rule wanted them?

        'Entered Y' rules need no change at all since (the user stayed in Y); 'left X'
        rules only need that the user has not come back to X, wherever else they went.
        """
        left = self.watches_return
        if left is None:
            return state.epoch == pending.epoch
        return state.segment != left and state.entered.get(str(left), -1) < pending.epoch


@dataclass(frozen=True, slots=True)
class Trigger:
    """One firing of one rule for one user. Value of the ``retargeting`` topic."""

    id: str
    rule: str
    profile: str
    old: int | None
    new: int
    change_id: str
    fired_ms: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Pending:
    rule: str
    change_id: str
    old: int | None
    new: int
    due_ms: int
    since_ms: int  # when the user entered the state the rule waits on
    epoch: int = 0  # the user's change count when it was scheduled


@dataclass(slots=True)
class TriggerState:
    """Per-user state of the trigger relay."""

    segment: int | None = None
    since_ms: int = 0  # when the user entered ``segment`` (relay time)
    epoch: int = 0  # changes applied: tells "nothing changed since" even within one ms
    entered: dict[str, int] = field(default_factory=dict)  # segment -> epoch it was entered
    seen: list[str] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    fired: dict[str, list[int]] = field(default_factory=dict)  # rule -> fire times
    suppressed: int = 0  # fires refused by a cap

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TriggerState:
        return cls(
            segment=d.get("segment"),
            since_ms=int(d.get("since_ms", 0)),
            epoch=int(d.get("epoch", 0)),
            entered={str(k): int(v) for k, v in d.get("entered", {}).items()},
            seen=list(d.get("seen", [])),
            pending=[Pending(**p) for p in d.get("pending", [])],
            fired={k: list(v) for k, v in d.get("fired", {}).items()},
            suppressed=int(d.get("suppressed", 0)),
        )


def trigger_id(change_id: str, rule: str) -> str:
    return hashlib.blake2b(f"{change_id}|{rule}".encode(), digest_size=16).hexdigest()


def _fire(s: TriggerState, rule: Rule, profile: str, p: Pending, now_ms: int) -> Trigger | None:
    window_start = now_ms - int(rule.cap_window_s * 1000)
    recent = [t for t in s.fired.get(rule.name, []) if t > window_start]
    if len(recent) >= rule.cap:
        s.fired = {**s.fired, rule.name: recent}
        s.suppressed += 1
        return None
    s.fired = {**s.fired, rule.name: [*recent, now_ms]}
    return Trigger(
        trigger_id(p.change_id, rule.name), rule.name, profile, p.old, p.new, p.change_id, now_ms
    )


def on_change(
    state: TriggerState | None,
    change: Mapping[str, Any],
    rules: Sequence[Rule],
    now_ms: int,
) -> tuple[TriggerState, list[Trigger]]:
    """A segment change arrived (a ``segment-changes`` record) at relay time ``now_ms``."""
    s = replace(state) if state is not None else TriggerState()
    if change["id"] in s.seen:
        return s, []
    s.seen = [*s.seen[-(MAX_SEEN - 1) :], change["id"]]
    old, new = change["old"], change["new"]
    s.segment, s.since_ms = new, now_ms
    s.epoch += 1
    s.entered = {**s.entered, str(new): s.epoch}
    fired: list[Trigger] = []
    pending = list(s.pending)
    for rule in rules:
        if not rule.matches(old, new):
            continue
        p = Pending(
            rule.name, change["id"], old, new, now_ms + int(rule.dwell_s * 1000), now_ms, s.epoch
        )
        if rule.dwell_s == 0:
            t = _fire(s, rule, change["profile"], p, now_ms)
            if t:
                fired.append(t)
        else:
            pending.append(p)
    s.pending = pending
    return s, fired


def on_tick(
    state: TriggerState, profile: str, rules: Iterable[Rule], now_ms: int
) -> tuple[TriggerState, list[Trigger]]:
    """Fire the pending triggers that are due, if the user stayed; drop the others."""
    by_name = {r.name: r for r in rules}
    due = [p for p in state.pending if p.due_ms <= now_ms]
    if not due:
        return state, []
    s = replace(state, pending=[p for p in state.pending if p.due_ms > now_ms])
    fired = []
    for p in due:
        rule = by_name.get(p.rule)
        if rule and rule.still_holds(s, p):
            t = _fire(s, rule, profile, p, now_ms)
            if t:
                fired.append(t)
    return s, fired


def next_due(state: TriggerState) -> int | None:
    return min((p.due_ms for p in state.pending), default=None)
