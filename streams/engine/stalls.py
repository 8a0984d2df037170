"""Partitions Faust assigned but stopped fetching (faust-streaming #629)."""

from __future__ import annotations

from collections.abc import Collection

from segstream.streams.engine.records import TP
from segstream.streams.lag import Position


class StallWatch:
    """Partitions assigned here that hold records nobody reads.

    faust-streaming can stop fetching some partitions after a rebalance (its open issue
    #629): the worker stays up, the other partitions flow, and those wait forever with
    their lag growing. A partition is stalled once it has spent ``after_s`` holding
    records without committing while another partition of this worker did commit, and
    while no agent of its topic was busy with a batch. Time in which nothing moves
    anywhere (an outage the worker waits out, tables being restored) does not count,
    nor does an agent held up by Redis while the others move.
    """

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self.last: dict[TP, int] = {}  # committed offset at the previous read
        self.behind: dict[TP, float] = {}  # seconds left behind while others moved
        self.lagging: set[TP] = set()  # held records at the previous read
        self.then: float | None = None

    def observe(
        self, positions: dict[TP, Position], now: float, busy: Collection[str] = ()
    ) -> list[TP]:
        """Record this read of the group's positions (``busy``: topics whose agent is in
        the middle of a batch); return the stalled partitions."""
        moved = {
            tp for tp, pos in positions.items() if self.last.get(tp, pos.committed) != pos.committed
        }
        dt = 0.0 if self.then is None else now - self.then
        self.then = now
        for tp, pos in positions.items():
            if tp in moved or pos.lag == 0 or tp not in self.lagging:
                self.behind[tp] = 0.0  # moving, nothing to read, or records only since then
            elif moved and tp[0] not in busy:  # an agent held up in a batch is not stalled
                self.behind[tp] += dt
        self.last = {tp: pos.committed for tp, pos in positions.items()}
        self.lagging = {tp for tp, pos in positions.items() if pos.lag > 0}
        self.behind = {tp: t for tp, t in self.behind.items() if tp in positions}
        if self.after_s <= 0:
            return []
        return sorted(tp for tp, t in self.behind.items() if t >= self.after_s)
