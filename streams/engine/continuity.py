"""Holes in what Faust hands an agent: offsets of a partition it never delivered.

Around a restart, a rebalance or a stop, Faust can skip records it has fetched: its
streams acknowledge them without handing them to an agent, and its commit logic then
moves the group's offset past them. The chaos tests caught it: after kill -9 and
SIGTERM loops, a few users missed an event for good. ``CommitGuard`` keeps commits
behind what agents finished; the check below finds the skipped records.

So every agent checks each batch before working on it. Per partition, the offsets
must go on from the last one delivered (first: from the group's committed offset). A
forward jump is a hole when the broker holds records in it (a jump over transaction
markers is not). A worker that finds a hole restarts itself (``restart``) before it
acknowledges anything after the hole (``restart``), so the group's offset stays before it and the
restarted worker reads the skipped records again: nothing is lost, and what is read
twice is skipped by the per-user offsets and event ids.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from segstream.schemas.settings import Settings, kafka_client_config
from segstream.streams.engine.records import TP, Record
from segstream.streams.lag import Offsets
from segstream.streams.retry import until_available

log = logging.getLogger("segstream.worker")

PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Hole:
    topic: str
    partition: int
    start: int  # first offset not delivered
    end: int  # the offset delivered instead (the hole is [start, end))


def find_holes(
    expected: dict[TP, int], delivered: Iterable[tuple[TP, int]]
) -> tuple[list[Hole], dict[TP, int]]:
    """Forward jumps in ``delivered`` against the next offset ``expected`` per partition.

    Returns the jumps and the next expected offsets after the batch. An offset below the
    expected one is a record delivered again (after a seek back): the sequence goes on
    from it.

    >>> find_holes({("t", 0): 5}, [(("t", 0), 5), (("t", 0), 6), (("t", 0), 9)])
    ([Hole(topic='t', partition=0, start=7, end=9)], {('t', 0): 10})
    >>> find_holes({}, [(("t", 1), 3), (("t", 1), 2)])
    ([], {('t', 1): 3})
    """
    nxt = dict(expected)
    holes: list[Hole] = []
    for tp, offset in delivered:
        want = nxt.get(tp)
        if want is not None and offset > want:
            holes.append(Hole(tp[0], tp[1], want, offset))
        nxt[tp] = offset + 1
    return holes, nxt


Committed = Callable[[list[TP]], Awaitable[dict[TP, int]]]
Probe = Callable[[Hole], Awaitable[bool]]


class Continuity:
    """One agent's delivered offsets, checked batch by batch."""

    def __init__(self, committed: Committed, probe: Probe) -> None:
        self.committed = committed
        self.probe = probe
        self.expected: dict[TP, int] = {}

    def forget(self, tps: Iterable[TP]) -> None:
        """Partitions taken away (a rebalance): when they come back, start from the group's
        committed offset again."""
        for tp in tps:
            self.expected.pop(tp, None)

    async def check(self, delivered: Sequence[tuple[TP, int]]) -> list[Hole]:
        """The holes before or inside this batch that hold records."""
        new = sorted({tp for tp, _ in delivered if tp not in self.expected})
        if new:
            self.expected.update(await self._committed(new))
        holes, nxt = find_holes(self.expected, delivered)
        confirmed = [h for h in holes if await self.probe(h)]
        self.expected = nxt
        return confirmed

    async def _committed(self, tps: list[TP]) -> dict[TP, int]:
        """The group's committed offsets; while the broker is away (a restart, a lost
        coordinator), the batch waits for it: it could not be written anyway."""
        return await until_available(
            "kafka", (KafkaException, OSError), lambda: self.committed(tps)
        )


class CommitGuard:
    """Caps what Faust commits at the offset after the last record an agent finished.

    Faust commits what its streams acknowledged. While flow is suspended (a stop, a
    rebalance) or after the consumer generation changed, a stream acknowledges the
    records it skips without handing them to any agent (faust/streams.py, ``skipped_value``),
    so the commit at the stop or the revocation moves the group past records nobody
    processed. With the guard, those offsets are not committed and the next owner reads
    them. Only the agents' topics are capped; Faust's own pass through.
    """

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = set(topics)
        self.done: dict[TP, int] = {}  # next offset after the last finished record

    def finished(self, records: Iterable[Record]) -> None:
        for tp, offset in delivered(records):
            if offset + 1 > self.done.get(tp, -1):
                self.done[tp] = offset + 1

    def forget(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self.done.pop(tp, None)

    def cap(self, tp: TP, offset: int | None) -> int | None:
        """The offset Faust may commit for ``tp`` instead of ``offset``."""
        if offset is None or tp[0] not in self.topics:
            return offset
        limit = self.done.get(tp)
        if limit is None or limit < offset:
            log.warning(
                "not committing %s[%d] up to %d: records from %s on were acknowledged "
                "without being processed (Faust skipped them); the next start reads them",
                tp[0],
                tp[1],
                offset,
                limit,
            )
            return limit
        return offset

    def install(self, consumer: Any) -> None:
        """Wrap the consumer's ``_new_offset`` (faust-streaming 0.15.3, pinned)."""
        new_offset = consumer._new_offset

        def capped(tp: Any) -> int | None:
            return self.cap((tp.topic, tp.partition), new_offset(tp))

        consumer._new_offset = capped


def delivered(records: Iterable[Record]) -> list[tuple[TP, int]]:
    """``((topic, partition), offset)`` of each record of a batch."""
    return [((r.topic, r.partition), r.offset) for r in records]


class Broker:
    """The two broker reads ``Continuity`` needs, in a thread (confluent-kafka)."""

    def __init__(self, settings: Settings) -> None:
        base = {**kafka_client_config(settings), "enable.auto.commit": False}
        self.group = Offsets(settings)
        probe_group = f"{settings.consumer_group}-probe"  # never joins: assign() only
        self.reader = Consumer(
            {**base, "group.id": probe_group, "isolation.level": "read_uncommitted"}
        )
        self.lock = threading.Lock()  # agents share it; one broker read at a time

    def _committed(self, tps: list[TP]) -> dict[TP, int]:
        """The group's next offset per partition (its earliest record when none is
        committed), as the lag reader sees it."""
        with self.lock:
            return {tp: pos.committed for tp, pos in self.group.read(tps).items()}

    def _holds_records(self, hole: Hole) -> bool:
        """Whether any record sits in the hole (a timeout counts as yes: restarting
        needlessly is cheap, losing records is not)."""
        with self.lock:
            return self._holds_records_locked(hole)

    def _holds_records_locked(self, hole: Hole) -> bool:
        self.reader.assign([TopicPartition(hole.topic, hole.partition, hole.start)])
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                msg = self.reader.poll(0.5)
                if msg is None or msg.error():
                    continue
                offset = msg.offset()
                return offset is not None and offset < hole.end
            return True
        finally:
            self.reader.unassign()

    async def committed(self, tps: list[TP]) -> dict[TP, int]:
        return await asyncio.to_thread(self._committed, tps)

    async def holds_records(self, hole: Hole) -> bool:
        return await asyncio.to_thread(self._holds_records, hole)


def describe(holes: list[Hole]) -> str:
    """``topic[partition] first..last`` of each hole, for the log."""
    return ", ".join(f"{h.topic}[{h.partition}] {h.start}..{h.end - 1}" for h in holes)
